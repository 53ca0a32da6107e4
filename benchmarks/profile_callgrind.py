"""End to end under callgrind: the real openai client's instructions per event, raw and
instrumented, with cache misses and branch mispredictions.

Live CPU time moves with the machine (2x between runs here, and a round's figure by +-15 %
around its run's median, more than the end-to-end targets' margin) and one interpreter's
figure with its heap; valgrind's counts do not. Each variant runs in a fresh interpreter under
``valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes`` twice, once with one stream and
once with three, and the difference of the two totals, per event, is what two streams cost
after the first (imports, set-up and the first stream's one-time work cancel out).

The streams are the real openai client's, over the bytes ``bench_e2e.py``'s upstreams send,
replayed through an ``httpx.MockTransport`` in 16 KiB reads: no socket, so only the client
process is counted, and no kernel time (a socket adds the same reads to every variant).

* Chat Completions (``chat.completions.create(stream=True)``, 1,997 content chunks + role,
  finish and usage chunks, ``_chat_upstream.py``'s frames): raw; wrap (``monitor.wrap``:
  Prometheus + spans, the default set-up); wrap+otel-metrics (the same plus OpenTelemetry SDK
  metrics: full telemetry); openai-v2 (``opentelemetry-instrumentation-openai-v2`` on the same
  providers).
* Responses API (``responses.create(stream=True)``, 1,992 deltas + 8 lifecycle events, the
  simulator's frames as ``_events.raw_events`` builds them), with the sync client and the async
  one (``AsyncOpenAI``, one event loop): raw, wrap and the reference wrapper
  (``reference.py``) on each, and ``responses_stream`` (sync): the rows of ``bench_e2e.py``'s
  end-to-end targets. Each is given as a ratio to raw of the same kind (sync or async) and to
  the reference wrapper of the same kind, in instructions and in valgrind's cycle estimate
  (``Ir + 10 x L1 misses + 100 x last-level misses``, KCachegrind's formula), which charges
  the wrapper's code and data for being evicted by the client's between two events.

Under valgrind a stream takes tens of seconds, so the monitors' timeouts are an hour and the
core's once-a-second timed flush is moved out of reach: natively these streams run at
thousands of events a second and their batches are flushed every 1,024 chunks, which is what is
counted. Every interpreter runs with ``PYTHONHASHSEED=0``. Each instrumented variant's monitor
is checked exactly after its run (ok streams, content bytes, chunk gaps).

Counts are not time, and the targets are for client CPU time: the cache and branch figures
are valgrind's model (two cache levels, a simple predictor), not the CPU's, so they rank what
touches more code and data and do not time it. Live, a wrapper's instructions run colder than
replayed (``docs/performance.md``: 1.4-2.8x), which the model captures only in part. Needs
valgrind (``apt-get install valgrind``); a full run takes 30-60 minutes (two callgrind runs at
a time, ``--jobs``).

Usage::

    python benchmarks/profile_callgrind.py                      # every variant
    python benchmarks/profile_callgrind.py --variants chat/raw,chat/wrap
    python benchmarks/profile_callgrind.py --api responses      # one API's variants
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _chat_upstream import sse_events
from _common import Table, emit
from _events import raw_events
from bench_e2e import (
    CHAT_CHUNKS,
    MODEL,
    RESPONSE_DELTAS,
    TARGETS,
    Instrumentation,
    Tally,
    Telemetry,
    _chat_call,
    _responses_call,
)
from reference import ReferenceSink, areference, reference, responses_text
from steadystream.simulate._protocol import sse_frame

OPENAI_V2 = "opentelemetry.instrumentation.openai_v2"
READ = 16 * 1024  # bytes per read handed to the client
#: Events per stream, as bench_e2e streams them.
PER_STREAM = {
    "chat": CHAT_CHUNKS + 3,  # + role, finish and usage chunks
    "responses": RESPONSE_DELTAS + 8,  # + lifecycle events
}
VARIANTS = (
    "chat/raw",
    "chat/wrap",
    "chat/wrap+otel-metrics",
    "chat/openai-v2",
    "responses/raw",
    "responses/wrap",
    "responses/responses_stream",
    "responses/reference",
    "responses/async raw",
    "responses/async wrap",
    "responses/async reference",
)
# valgrind's event names, and what the table calls them.
EVENTS = {
    "Ir": "instructions",
    "I1mr": "I1 misses",
    "D1mr": "D1 read misses",
    "D1mw": "D1 write misses",
    "ILmr": "LL instr misses",
    "DLmr": "LL read misses",
    "DLmw": "LL write misses",
    "Bcm": "cond. branch mispredicts",
    "Bim": "indirect branch mispredicts",
}


def _floor(variant: str) -> str:
    """The raw variant ``variant`` is measured against: the client of the same API and kind."""
    api, name = variant.split("/")
    return f"{api}/async raw" if name.startswith("async ") else f"{api}/raw"


def _reference_of(variant: str) -> str | None:
    """The reference wrapper of ``variant``'s kind (Responses only)."""
    api, name = variant.split("/")
    if api != "responses" or name.endswith("raw") or name.endswith("reference"):
        return None
    return f"{api}/async reference" if name.startswith("async ") else f"{api}/reference"


def _body(api: str) -> list[bytes]:
    if api == "chat":
        sse = b"".join(sse_events(CHAT_CHUNKS, MODEL, "chatcmpl-1", include_usage=True))
    else:
        sse = b"".join(sse_frame(e["type"], e) for e in raw_events(RESPONSE_DELTAS))
    return [sse[i : i + READ] for i in range(0, len(sse), READ)]


def _child(variant: str, streams: int) -> int:
    """Run ``streams`` streams of ``variant`` in this process; return the events."""
    import asyncio

    import httpx
    from openai import AsyncOpenAI, OpenAI
    from prometheus_client import CollectorRegistry

    import steadystream as ss
    from steadystream.instrumentation.openai import responses_stream
    from steadystream.spec.model import Spec

    api, name = variant.split("/")
    body = _body(api)
    headers = {"content-type": "text/event-stream"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=iter(body))

    async def ahandler(request: httpx.Request) -> httpx.Response:
        async def content() -> Any:
            for piece in body:
                yield piece

        return httpx.Response(200, headers=headers, content=content())

    options: dict[str, Any] = {"base_url": "http://upstream.invalid/v1", "api_key": "profile"}
    client = OpenAI(
        **options, max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    aclient = AsyncOpenAI(
        **options,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(ahandler)),
    )
    tel = Telemetry()
    hour = {"first_token": "1h", "stream_idle": "1h", "total": "1h"}
    spec = Spec.model_validate({"version": 1, "service": "profile", "stream": {"timeouts": hour}})
    monitor = ss.StreamMonitor(
        spec,
        registry=CollectorRegistry(),
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider if name == "wrap+otel-metrics" else None,
    )
    sink = ReferenceSink(tuple(spec.histogram_buckets()["stream_chunk_gap_ms"]))
    loop = asyncio.new_event_loop()
    tally = Tally()

    async def acount(opened: Any, wrap: Callable[[Any], Any]) -> int:
        return await tally.acount(wrap(await opened))

    runs: dict[str, Callable[[], int]] = {
        "chat/raw": lambda: tally.count(_chat_call(client)),
        "chat/wrap": lambda: tally.count(monitor.wrap(_chat_call(client), MODEL, "openai")),
        "chat/openai-v2": lambda: tally.count(_chat_call(client)),
        "responses/raw": lambda: tally.count(_responses_call(client)),
        "responses/wrap": lambda: tally.count(
            monitor.wrap(_responses_call(client), MODEL, "openai")
        ),
        "responses/responses_stream": lambda: tally.count(
            responses_stream(
                monitor, client, model=MODEL, input="benchmark", max_output_tokens=RESPONSE_DELTAS
            )
        ),
        "responses/reference": lambda: tally.count(
            reference(_responses_call(client), sink, responses_text)
        ),
        "responses/async raw": lambda: loop.run_until_complete(
            acount(_responses_call(aclient), lambda s: s)
        ),
        "responses/async wrap": lambda: loop.run_until_complete(
            acount(_responses_call(aclient), lambda s: monitor.wrap(s, MODEL, "openai"))
        ),
        "responses/async reference": lambda: loop.run_until_complete(
            acount(_responses_call(aclient), lambda s: areference(s, sink, responses_text))
        ),
    }
    runs["chat/wrap+otel-metrics"] = runs["chat/wrap"]
    around: Any = contextlib.nullcontext()
    if name == "openai-v2":
        around = Instrumentation(tel, "opentelemetry-instrumentation-openai-v2", OPENAI_V2)
        if not around.available:
            raise SystemExit(f"openai-v2 is not usable here: {around.error}")
    spanned = name not in ("raw", "async raw", "reference", "async reference")
    events = 0
    with around:  # openai-v2 on for this run only; the SDK as shipped afterwards
        for _ in range(streams):
            events += runs[variant]()
            made = len(tel.spans.get_finished_spans())
            tel.spans.clear()
            if spanned != (made > 0):
                raise SystemExit(f"{variant}: {made} spans for a stream")
    loop.close()
    if events != streams * PER_STREAM[api]:
        raise SystemExit(f"{variant}: {events} events, not {streams * PER_STREAM[api]}")
    if "wrap" in name or name == "responses_stream":
        problems = tally.check(variant, monitor)
        if problems:
            raise SystemExit("; ".join(problems))
    return events


def _totals(path: Path) -> dict[str, int]:
    names: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("totals:"):
            return dict(zip(names, map(int, line.split()[1:]), strict=True))
    raise RuntimeError(f"{path}: no totals line (did callgrind finish?)")


def _under_callgrind(variant: str, streams: int, out: Path) -> dict[str, int]:
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--cache-sim=yes",
        "--branch-sim=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        variant,
        str(streams),
    ]
    # A fixed hash seed: dict and set layouts, and with them the heap, the same in every run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{variant} x{streams} under callgrind failed:\n{tail}")
    return _totals(out)


def _chat_table(per_event: dict[str, dict[str, float]]) -> Table:
    chosen = [v for v in VARIANTS if v.startswith("chat/") and v in per_event]
    raw = per_event["chat/raw"]
    table = Table(
        "Chat Completions under callgrind, per chunk above the raw client "
        f"(two completions of {PER_STREAM['chat']} chunks, after the first)",
        ["event", "raw (absolute)", *[v.split("/")[1] for v in chosen[1:]]],
    )
    for key, label in EVENTS.items():
        if key not in raw:
            continue
        cells = [f"{raw[key]:,.0f}"]
        cells += [f"{per_event[v][key] - raw[key]:+,.0f}" for v in chosen[1:]]
        table.add(label, *cells)
    if "chat/openai-v2" in per_event:
        theirs = per_event["chat/openai-v2"]["Ir"] - raw["Ir"]
        for v in chosen[1:]:
            if v != "chat/openai-v2":
                ours = per_event[v]["Ir"] - raw["Ir"]
                name = v.split("/")[1]
                table.notes.append(
                    f"{name}: instructions above raw / openai-v2's: {ours / theirs:.2f}"
                )
    return table


def _cycles(counts: dict[str, float]) -> float:
    """valgrind's cycle estimate (KCachegrind's formula): instructions, 10 per L1 miss, 100
    per last-level miss."""
    l1 = counts["I1mr"] + counts["D1mr"] + counts["D1mw"]
    ll = counts["ILmr"] + counts["DLmr"] + counts["DLmw"]
    return counts["Ir"] + 10 * l1 + 100 * ll


def _responses_table(per_event: dict[str, dict[str, float]]) -> Table:
    chosen = [v for v in VARIANTS if v.startswith("responses/") and v in per_event]
    table = Table(
        "Responses API end to end under callgrind, per event "
        f"(two responses of {PER_STREAM['responses']} events, after the first)",
        [
            "variant",
            "instructions",
            "above raw",
            "ratio to raw",
            "ratio to the reference",
            "cycle estimate: ratio to raw",
            "to the reference",
            "live target (CPU time)",
        ],
    )
    for v in chosen:
        counts = per_event[v]
        name = v.split("/")[1]
        floor, ref = per_event[_floor(v)], per_event.get(_reference_of(v) or "")
        cells = [f"{counts['Ir']:,.0f}"]
        if v == _floor(v):
            cells += ["", "", "", "", "", ""]
        else:
            cells += [
                f"{counts['Ir'] - floor['Ir']:+,.0f}",
                f"{counts['Ir'] / floor['Ir']:.4f}",
                f"{counts['Ir'] / ref['Ir']:.4f}" if ref else "",
                f"{_cycles(counts) / _cycles(floor):.4f}",
                f"{_cycles(counts) / _cycles(ref):.4f}" if ref else "",
                f"<= {TARGETS[name]:.2f}" if name in TARGETS else "",
            ]
        table.add(name, *cells)
    table.notes.append(
        "Async rows against async raw and the async reference; sync rows against raw and the "
        "reference. Counted, not timed: the live targets are for client CPU time (see the "
        "module docstring)."
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help=f"comma-separated, of {VARIANTS}")
    parser.add_argument("--api", choices=("chat", "responses"), help="one API's variants")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at a time")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # a process of its own, under valgrind
        from steadystream.instrumentation.core import machine

        # Natively these streams run at thousands of events a second, so the core's batches
        # are flushed every 1,024 chunks and the once-a-second timed flush never comes first.
        # Under valgrind a stream takes tens of seconds: without this the timed flush would
        # come every few dozen chunks, a cadence no native run has.
        machine._FLUSH_EVERY = float("inf")
        variant, n = args.child
        print(json.dumps({"events": _child(variant, int(n))}))
        return 0
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()] or [
        v for v in VARIANTS if args.api is None or v.startswith(f"{args.api}/")
    ]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {VARIANTS}")
    if shutil.which("valgrind") is None:
        print("profile_callgrind: valgrind is not installed (apt-get install valgrind)")
        return 2
    # Every variant's raw client, and the reference wrapper of its kind.
    needed = {x for v in chosen for x in (_floor(v), _reference_of(v)) if x is not None}
    chosen = [v for v in VARIANTS if v in set(chosen) | needed]
    per_event: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        runs = {
            (v, n): pool.submit(_under_callgrind, v, n, Path(tmp) / f"{v.replace('/', '.')}.{n}")
            for v in chosen
            for n in (1, 3)
        }
        for variant in chosen:
            one, three = runs[variant, 1].result(), runs[variant, 3].result()
            per = 2 * PER_STREAM[variant.split("/")[0]]
            per_event[variant] = {k: (three[k] - one[k]) / per for k in EVENTS if k in one}
            print(f"{variant}: done", file=sys.stderr)
    tables = []
    if "chat/raw" in per_event:
        tables.append(_chat_table(per_event))
    if "responses/raw" in per_event:
        tables.append(_responses_table(per_event))
    emit("profile-callgrind", tables, {"per_event": per_event})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
