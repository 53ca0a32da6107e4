"""Benchmark 5: SSE parsing of one long ``data:`` line, cut into 64-byte chunks.

A single event whose ``data:`` line is 256 KiB, 1 MiB or 4 MiB long arrives in 64-byte network
chunks (the worst case for a parser that re-joins or re-scans its buffer per chunk: 16,384 chunks
per MiB). Two variants per size, alternating in every round (see ``_common.alternate``):

* ``reader``: the byte reader alone (strict UTF-8 decoding, then the SSE parser), the part
  that must stay linear;
* ``wrap``: ``monitor.wrap`` over the byte chunks (Prometheus sink, no-op tracer), what a
  service pays per chunk on top.

The figure that matters is the ratio of times between sizes, computed per round between runs
seconds apart: linear parsing gives about 4x for 4x the bytes (1 MiB vs 256 KiB, and 4 MiB vs
1 MiB); a parser quadratic in line length gives about 16x. After each run the parsed event's
data length (reader) or the bytes handed on (wrap) are checked, so a variant that skipped its
work cannot pass.

Target: both ratios at most 6x, for both variants.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import steadystream as ss
from _common import Summary, Table, alternate, emit, verdict
from steadystream.instrumentation.core.shell import ByteReader

CLOCK = time.process_time
CHUNK = 64
SIZES = {"256KiB": 256 * 1024, "1MiB": 1024 * 1024, "4MiB": 4 * 1024 * 1024}
TARGET_RATIO = 6.0
# Bigger than the largest line, so the cap is not what ends the event.
CAP = 16 * 1024 * 1024


def body(size: int) -> list[bytes]:
    """One event with a ``size``-byte ``data:`` line, in ``CHUNK``-byte pieces."""
    raw = b"event: response.output_text.delta\ndata: " + b"x" * size + b"\n\n"
    return [raw[i : i + CHUNK] for i in range(0, len(raw), CHUNK)]


def reader_run(chunks: list[bytes], size: int) -> Callable[[], float]:
    def run() -> float:
        reader = ByteReader(sse=True, max_event_bytes=CAP)
        events = []
        t0 = CLOCK()
        for chunk in chunks:
            events.extend(reader.feed(chunk)[1])
        elapsed = CLOCK() - t0
        if len(events) != 1 or len(events[0].data) != size or reader.too_large is not None:
            raise RuntimeError(f"reader parsed {len(events)} event(s), not one of {size} bytes")
        return elapsed

    return run


def wrap_run(chunks: list[bytes], monitor: ss.StreamMonitor) -> Callable[[], float]:
    total = sum(len(c) for c in chunks)

    def run() -> float:
        seen = 0
        t0 = CLOCK()
        for chunk in monitor.wrap(iter(chunks), model="bench", provider="bench", sse=True):
            seen += len(chunk)
        elapsed = CLOCK() - t0
        if seen != total:
            raise RuntimeError(f"wrap handed on {seen} bytes, not {total}")
        return elapsed

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    from opentelemetry.trace import NoOpTracerProvider
    from prometheus_client import CollectorRegistry

    spec = ss.Spec.model_validate(
        {"version": 1, "service": "bench", "stream": {"max_event_bytes": CAP}}
    )
    monitor = ss.StreamMonitor(
        spec, registry=CollectorRegistry(), tracer_provider=NoOpTracerProvider(), watchdog=False
    )
    bodies = {name: body(size) for name, size in SIZES.items()}
    variants: dict[str, Callable[[], float]] = {}
    for name, size in SIZES.items():
        variants[f"reader {name}"] = reader_run(bodies[name], size)
        variants[f"wrap {name}"] = wrap_run(bodies[name], monitor)
    per_round = alternate(variants, args.rounds)

    times = Table(
        f"SSE parse: one data: line in {CHUNK}-byte chunks (CPU time, median (p25-p75) of "
        f"{args.rounds} rounds)",
        ["variant", "line", "chunks", "ms", "ns / byte"],
    )
    results: dict[str, dict[str, object]] = {}
    for v in ("reader", "wrap"):
        for name, size in SIZES.items():
            s = Summary.of(t * 1000 for t in per_round[f"{v} {name}"])
            ns_per_byte = Summary.of(t * 1e9 / size for t in per_round[f"{v} {name}"])
            times.add(v, name, len(bodies[name]), s.fmt(".1f"), ns_per_byte.fmt(".1f"))
            results[f"{v} {name}"] = {"ms": s.as_dict(), "ns_per_byte": ns_per_byte.as_dict()}

    ratios = Table(
        "SSE parse: time ratio for 4x the bytes (linear: about 4x; quadratic: about 16x)",
        ["variant", "1MiB / 256KiB", "4MiB / 1MiB", f"target <= {TARGET_RATIO:g}x"],
    )
    met = True
    for v in ("reader", "wrap"):
        small, mid, big = (per_round[f"{v} {n}"] for n in SIZES)
        r1 = Summary.of(b / a for a, b in zip(small, mid, strict=True))
        r2 = Summary.of(b / a for a, b in zip(mid, big, strict=True))
        ok = r1.median <= TARGET_RATIO and r2.median <= TARGET_RATIO
        met = met and ok
        ratios.add(v, r1.fmt(".2f", "x"), r2.fmt(".2f", "x"), verdict(ok))
        results[f"{v} ratios"] = {"1MiB/256KiB": r1.as_dict(), "4MiB/1MiB": r2.as_dict()}
    ratios.notes.append("ratios are computed per round between runs seconds apart, then summarised")
    emit("sse", [times, ratios], {"results": results, "target_met": met, "rounds": args.rounds})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
