"""Profile the per-chunk path of ``monitor.wrap`` and break its cost down.

Two tools, both on the synthetic SDK stream of ``bench_chunk.py``:

``--profile`` (default): the stream through ``monitor.wrap`` under pyinstrument (a statistical
profiler, low overhead, so the shares are honest), for one sink set-up and mode. The text
report is printed and saved with an HTML one under ``benchmarks/results/``.

``--ladder``: the cost per event built up step by step, each step measured side by side with
the others (alternating rounds, median): the bare loop; a pass-through Python iterator (what any
wrapper costs); plus two clock reads; the core alone (``StreamCore.on_wait`` + ``on_item``, no
shell, null observer); the full ``monitor.wrap`` with the Prometheus sink; and with the
OpenTelemetry SDK sinks. Next to it, the unit costs of the primitives on this machine (a clock
read, UTF-8 encode + sha256 update of one delta, one SDK ``Histogram.record``, one
prometheus_client ``observe``), so the floor of each design choice can be read off.

Usage::

    python benchmarks/profile_chunk.py --variant prometheus --mode sync
    python benchmarks/profile_chunk.py --ladder
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
import timeit
from collections.abc import Callable
from typing import Any

import _events
import steadystream as ss
from _common import RESULTS, Summary, Table, alternate, emit
from bench_chunk import MODEL, Setup, async_runner, sync_runner


def profile(variant: str, mode: str, deltas: int) -> None:
    from pyinstrument import Profiler

    events = _events.sdk_events(deltas)
    spec = ss.default_spec("bench")
    setup = Setup(
        variant, spec, prometheus=variant in ("prometheus", "both"), otel=variant != "prometheus"
    )
    loop = asyncio.new_event_loop()
    run = sync_runner(events, setup) if mode == "sync" else async_runner(loop, events, setup)
    run()  # warm-up
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    run()
    profiler.stop()
    loop.close()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"profile-{variant}-{mode}"
    stem.with_suffix(".txt").write_text(text)
    stem.with_suffix(".html").write_text(profiler.output_html())
    print(f"saved {stem}.txt and .html")


class _PassThrough:
    """The cheapest possible Python-level iterator wrapper: the cost of being a wrapper."""

    __slots__ = ("_it",)

    def __init__(self, it: Any) -> None:
        self._it = it

    def __iter__(self) -> _PassThrough:
        return self

    def __next__(self) -> Any:
        return next(self._it)


class _Clocked(_PassThrough):
    """A pass-through wrapper that reads the clock twice per item, as the shell does."""

    __slots__ = ("_clock",)

    def __init__(self, it: Any) -> None:
        super().__init__(it)
        self._clock = time.monotonic

    def __next__(self) -> Any:
        self._clock()
        item = next(self._it)
        self._clock()
        return item


class _Null:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


def ladder(deltas: int, rounds: int) -> None:
    from steadystream.instrumentation.core.machine import CorePolicy, StreamCore

    events = _events.sdk_events(deltas)
    n = len(events)
    spec = ss.default_spec("bench")
    prom = Setup("prometheus", spec, prometheus=True, otel=False)
    both = Setup("both", spec, prometheus=True, otel=True)
    policy = CorePolicy.from_spec(spec)

    def timed(fn: Callable[[], None]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.process_time()  # CPU time: immune to other tenants of the machine
            fn()
            return (time.process_time() - t0) / n * 1e9

        return run

    def bare() -> None:
        for _ in iter(events):
            pass

    def passthrough() -> None:
        for _ in _PassThrough(iter(events)):
            pass

    def clocked() -> None:
        for _ in _Clocked(iter(events)):
            pass

    def core_only() -> None:
        clock = time.monotonic
        core = StreamCore(policy, _Null())
        core.on_open(clock())
        core.begin_attempt(clock())
        on_wait, on_item = core.on_wait, core.on_item
        for e in events:
            on_wait(clock())
            on_item(e, clock())
        core.close(clock())

    def wrap(setup: Setup) -> Callable[[], None]:
        def run() -> None:
            for _ in setup.monitor.wrap(iter(events), model=MODEL, provider="openai"):
                pass

        return run

    steps = {
        "bare loop": timed(bare),
        "+ pass-through Python iterator": timed(passthrough),
        "+ two clock reads": timed(clocked),
        "core alone (on_wait + on_item, null sinks)": timed(core_only),
        "monitor.wrap, Prometheus sink": timed(wrap(prom)),
        "monitor.wrap, Prometheus + OTel SDK": timed(wrap(both)),
    }
    per = alternate(steps, rounds)
    table = Table(
        f"Per-event cost ladder, sync, {deltas:,} deltas ({rounds} alternating rounds)",
        ["step", "ns/event (median, p25–p75)"],
    )
    for name, xs in per.items():
        table.add(name, Summary.of(xs).fmt(".0f"))

    units = unit_costs()
    utable = Table("Unit costs of the primitives on this machine", ["primitive", "ns per call"])
    for name, ns in units.items():
        utable.add(name, f"{ns:.0f}")
    emit(
        "profile-ladder",
        [table, utable],
        {
            "ladder_ns": {k: Summary.of(v).as_dict() for k, v in per.items()},
            "unit_ns": units,
        },
    )


def unit_costs() -> dict[str, float]:
    """ns per call of the primitives the per-chunk path is built from."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry, Histogram

    ev = _events.sdk_events(1)[4]
    text = ev.delta + " 流式"
    h = hashlib.sha256()
    attrs = {"service": "bench", "model": MODEL, "provider": "openai"}
    otel_hist = (
        MeterProvider(metric_readers=[InMemoryMetricReader()])
        .get_meter("bench")
        .create_histogram("gap", unit="ms")
    )
    prom_child = Histogram("gap", "gap", ["service"], registry=CollectorRegistry()).labels("x")
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "time.monotonic()": ("clock()", {"clock": time.monotonic}),
        "getattr(event, 'type') on an SDK event": ("getattr(ev, 'type')", {"ev": ev}),
        "encode + sha256.update of one delta": (
            "h.update(text.encode('utf-8', 'surrogatepass'))",
            {"h": h, "text": text},
        ),
        "sha256 copy + hexdigest (one checkpoint)": ("h.copy().hexdigest()", {"h": h}),
        "prometheus_client Histogram.observe": ("child.observe(12.5)", {"child": prom_child}),
        "OpenTelemetry SDK Histogram.record, 3 attributes": (
            "hist.record(12.5, attrs)",
            {"hist": otel_hist, "attrs": attrs},
        ),
    }
    out = {}
    for name, (stmt, env) in cases.items():
        timer = timeit.Timer(stmt, globals=env)
        loops, _ = timer.autorange()
        best = min(timer.repeat(repeat=5, number=loops)) / loops
        out[name] = best * 1e9
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", action="store_true")
    parser.add_argument("--variant", default="prometheus", choices=("prometheus", "otel", "both"))
    parser.add_argument("--mode", default="sync", choices=("sync", "async"))
    parser.add_argument("--deltas", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.ladder:
        ladder(args.deltas, args.rounds)
    else:
        profile(args.variant, args.mode, args.deltas)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
