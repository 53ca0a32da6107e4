"""Where the memory a wrapped stream adds is allocated: tracemalloc by allocation site.

Runs the scale benchmark's memory scenario (``bench_scale.measure_memory``: N concurrent streams,
each stopped after the same number of events, the simulator stalling so no unread bytes are
buffered) for raw streams and for a wrapped variant, snapshots tracemalloc at the barrier, and
prints the allocation sites (file:line) whose memory grew the most between the two, per
stream. That is the memory profile behind the scale table's "added by wrapper" column.

Usage::

    python benchmarks/profile_memory.py --variant responses_stream --streams 300
"""

from __future__ import annotations

import argparse
import asyncio
import tracemalloc
from typing import Any

import _procs
import bench_scale as b


async def _snapshot(url: str, variant: b.Variant, spec: Any, streams: int, barrier: int) -> Any:
    snaps: list[Any] = []
    real_stop = tracemalloc.stop

    def keep_snapshot() -> None:
        snaps.append(tracemalloc.take_snapshot())
        real_stop()

    # measure_memory stops tracemalloc right after reading the traced total at the barrier;
    # take the snapshot at exactly that moment.
    tracemalloc.stop = keep_snapshot  # type: ignore[assignment]
    try:
        res = await b.measure_memory(url, variant, spec, streams=streams, barrier=barrier, ramp=1.0)
    finally:
        tracemalloc.stop = real_stop  # type: ignore[assignment]
    if res["error_count"]:
        raise RuntimeError(f"{variant.name}: {res['error_count']} streams failed: {res['errors']}")
    return snaps[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant", default="responses_stream", choices=("wrap", "responses_stream", "sdk-spans")
    )
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--barrier", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    spec = b.bench_spec()
    monitor, _ = b.make_monitor(spec, sdk_spans=args.variant == "sdk-spans")
    mode = "wrap" if args.variant == "wrap" else "responses_stream"
    variant = b.Variant(args.variant, monitor, mode)
    with _procs.simulator() as url:
        raw = asyncio.run(
            _snapshot(url, b.Variant("raw", None, "raw"), spec, args.streams, args.barrier)
        )
        wrapped = asyncio.run(_snapshot(url, variant, spec, args.streams, args.barrier))
    diff = wrapped.compare_to(raw, "lineno")
    total = sum(d.size_diff for d in diff)
    print(
        f"{args.variant} vs raw, {args.streams} streams after {args.barrier} events: "
        f"{total / args.streams:,.0f} B/stream added in total; top sites (B/stream, count/stream):"
    )
    for d in diff[: args.top]:
        frame = d.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("/src/")[-1]
        print(
            f"{d.size_diff / args.streams:9,.0f}  {d.count_diff / args.streams:6.1f}  "
            f"{where}:{frame.lineno}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
