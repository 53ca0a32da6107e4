"""Where the end-to-end overhead of ``monitor.wrap`` comes from: the live client or the wrapper.

Against the simulator in a child process, the sync openai client's Responses stream (2,000
events) is consumed, alternating rounds, CPU time per event:

* raw: the live SDK stream;
* wrap: ``monitor.wrap`` over the live SDK stream (watchdog on, as by default);
* wrap, no watchdog: the same with ``StreamMonitor(watchdog=False)``;
* list raw / list wrap: the same 2,000 SDK events, read once and replayed from a list, raw and
  through ``monitor.wrap`` (no sockets: the wrapper's own per-item work on real events).

Each is reported above its own raw (live or list). "wrap" reads 2-3x "list wrap": between a
live client's events (about 83 us and 850,000 instructions of SDK work each) the wrapper's code
and data are out of the CPU's caches and branch predictors, so the same work costs more; the
reference wrapper shows the same. Rare steps suffer most (a flush of the batched content: see
docs/performance.md, "End to end"). One process's figures move by about half a microsecond
per event from one interpreter to the next: compare variants inside one process.

Usage::

    python benchmarks/profile_e2e.py --rounds 8 --streams 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import _procs
import steadystream as ss
from _common import Summary, Table, emit
from bench_e2e import MODEL, Tally, Telemetry, _responses_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--streams", type=int, default=3, help="responses per measurement")
    args = parser.parse_args(argv)

    from openai import OpenAI
    from prometheus_client import CollectorRegistry

    tel = Telemetry()

    def monitor(**kw: Any) -> ss.StreamMonitor:
        return ss.StreamMonitor(
            ss.default_spec("bench"),
            registry=CollectorRegistry(),
            tracer_provider=tel.tracer_provider,
            **kw,
        )

    m_watchdog = monitor()
    m_plain = monitor(watchdog=False)
    with _procs.simulator() as url:
        rc = OpenAI(base_url=url, api_key="bench", max_retries=0)
        events = list(_responses_call(rc))
        variants: dict[str, Callable[[], int]] = {
            "raw": lambda: Tally().count(_responses_call(rc)),
            "wrap": lambda: Tally().count(m_watchdog.wrap(_responses_call(rc), MODEL, "openai")),
            "wrap, no watchdog": lambda: Tally().count(
                m_plain.wrap(_responses_call(rc), MODEL, "openai")
            ),
            "list raw": lambda: Tally().count(iter(events)),
            "list wrap": lambda: Tally().count(m_watchdog.wrap(iter(events), MODEL, "openai")),
        }
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                c0 = time.process_time()
                n = sum(variants[name]() for _ in range(args.streams))
                cpu[name].append((time.process_time() - c0) / n * 1e6)
    table = Table(
        f"monitor.wrap, live stream vs replayed events ({args.rounds} alternating rounds of "
        f"{args.streams} responses)",
        ["variant", "CPU us/event", "above its raw, us/event"],
    )
    out = {}
    for name, xs in cpu.items():
        base = cpu["list raw" if name.startswith("list") else "raw"]
        above = Summary.of(x - b for x, b in zip(xs, base, strict=True))
        table.add(name, Summary.of(xs).fmt(".2f"), above.fmt(".2f"))
        out[name] = {"cpu_us": Summary.of(xs).as_dict(), "above_raw_us": above.as_dict()}
    emit("profile-e2e", [table], out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
