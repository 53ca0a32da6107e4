"""Chat Completions per chunk under callgrind: instructions, cache misses and branch
mispredictions of steadystream and openai-v2, above the raw client.

Live CPU time moves with the machine (2x between runs here) and one interpreter's figure with
its heap; valgrind's counts do not. Each variant runs in a fresh interpreter under
``valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes`` twice, once with one completion
and once with three, and the difference of the two totals, per chunk, is what two completions
cost after the first (imports, set-up and the first stream's one-time work cancel out).

The completions are the real openai client's (``chat.completions.create(stream=True)``, 1,997
content chunks + role, finish and usage chunks, as ``bench_e2e.py`` streams them) over the
frames of ``_chat_upstream.py`` replayed through an ``httpx.MockTransport`` in 16 KiB reads: no
socket, so only the client process is counted. Variants:

* raw: the SDK stream as is;
* wrap: ``monitor.wrap`` (Prometheus + spans, the default set-up);
* wrap+otel-metrics: the same plus OpenTelemetry SDK metrics (full telemetry);
* openai-v2: ``opentelemetry-instrumentation-openai-v2`` on the same providers.

Under valgrind a completion takes tens of seconds, so the monitors' timeouts are an hour and
the core's once-a-second timed flush is moved out of reach: natively these completions run at
about 10,000 chunks a second and their batches are flushed every 1,024 chunks, which is what
is counted. Every interpreter runs with ``PYTHONHASHSEED=0``.

The cache and branch figures are valgrind's model (two cache levels, a simple predictor), not
the CPU's: they rank what touches more code and data, they do not time it. Needs valgrind
(``apt-get install valgrind``); a full run takes 15-30 minutes.

Usage::

    python benchmarks/profile_callgrind.py                  # all four variants
    python benchmarks/profile_callgrind.py --variants raw,wrap
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _chat_upstream import sse_events
from _common import Table, emit
from bench_e2e import CHAT_CHUNKS, MODEL, Instrumentation, Tally, Telemetry, _chat_call

PER_COMPLETION = CHAT_CHUNKS + 3  # + role, finish and usage chunks, as bench_e2e streams them
OPENAI_V2 = "opentelemetry.instrumentation.openai_v2"
READ = 16 * 1024  # bytes per read handed to the client
VARIANTS = ("raw", "wrap", "wrap+otel-metrics", "openai-v2")
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


def _body() -> list[bytes]:
    sse = b"".join(sse_events(CHAT_CHUNKS, MODEL, "chatcmpl-1", include_usage=True))
    return [sse[i : i + READ] for i in range(0, len(sse), READ)]


def _child(variant: str, completions: int) -> int:
    """Run ``completions`` completions of ``variant`` in this process; return the chunks."""
    import httpx
    from openai import OpenAI
    from prometheus_client import CollectorRegistry

    import steadystream as ss
    from steadystream.spec.model import Spec

    body = _body()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(body)
        )

    client = OpenAI(
        base_url="http://upstream.invalid/v1",
        api_key="profile",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    tel = Telemetry()
    hour = {"first_token": "1h", "stream_idle": "1h", "total": "1h"}
    spec = Spec.model_validate({"version": 1, "service": "profile", "stream": {"timeouts": hour}})
    monitor = ss.StreamMonitor(
        spec,
        registry=CollectorRegistry(),
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider if variant == "wrap+otel-metrics" else None,
    )
    around: Any = contextlib.nullcontext()
    if variant == "openai-v2":
        around = Instrumentation(tel, "opentelemetry-instrumentation-openai-v2", OPENAI_V2)
        if not around.available:
            raise SystemExit(f"openai-v2 is not usable here: {around.error}")
    tally = Tally()
    chunks = 0
    with around:  # openai-v2 on for this run only; the SDK as shipped afterwards
        for _ in range(completions):
            stream = _chat_call(client)
            if variant in ("wrap", "wrap+otel-metrics"):
                stream = monitor.wrap(stream, MODEL, "openai")
            chunks += tally.count(stream)
            made = len(tel.spans.get_finished_spans())
            tel.spans.clear()
            if (variant != "raw") != (made > 0):
                raise SystemExit(f"{variant}: {made} spans for a completion")
    if chunks != completions * PER_COMPLETION:
        raise SystemExit(f"{variant}: {chunks} chunks, not {completions * PER_COMPLETION}")
    if variant in ("wrap", "wrap+otel-metrics"):
        problems = tally.check(variant, monitor)
        if problems:
            raise SystemExit("; ".join(problems))
    return chunks


def _totals(path: Path) -> dict[str, int]:
    names: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("totals:"):
            return dict(zip(names, map(int, line.split()[1:]), strict=True))
    raise RuntimeError(f"{path}: no totals line (did callgrind finish?)")


def _under_callgrind(variant: str, completions: int, out: Path) -> dict[str, int]:
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
        str(completions),
    ]
    # A fixed hash seed: dict and set layouts, and with them the heap, the same in every run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{variant} x{completions} under callgrind failed:\n{tail}")
    return _totals(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {VARIANTS}"
    )
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at a time")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # a process of its own, under valgrind
        from steadystream.instrumentation.core import machine

        # Natively these completions run at about 10,000 chunks a second, so the core's
        # batches are flushed every 1,024 chunks and the once-a-second timed flush never comes
        # first. Under valgrind a completion takes tens of seconds: without this the timed
        # flush would come every few dozen chunks, a cadence no native run has.
        machine._FLUSH_EVERY = float("inf")
        variant, n = args.child
        print(json.dumps({"chunks": _child(variant, int(n))}))
        return 0
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {VARIANTS}")
    if shutil.which("valgrind") is None:
        print("profile_callgrind: valgrind is not installed (apt-get install valgrind)")
        return 2
    if "raw" not in chosen:
        chosen.insert(0, "raw")
    per_chunk: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        runs = {
            (v, n): pool.submit(_under_callgrind, v, n, Path(tmp) / f"{v}.{n}.out")
            for v in chosen
            for n in (1, 3)
        }
        for variant in chosen:
            one, three = runs[variant, 1].result(), runs[variant, 3].result()
            per_chunk[variant] = {
                k: (three[k] - one[k]) / (2 * PER_COMPLETION) for k in EVENTS if k in one
            }
            print(f"{variant}: done", file=sys.stderr)
    raw = per_chunk["raw"]
    table = Table(
        "Chat Completions under callgrind, per chunk above the raw client "
        f"(two completions of {PER_COMPLETION} chunks, after the first)",
        ["event", "raw (absolute)", *[v for v in chosen if v != "raw"]],
    )
    data: dict[str, Any] = {"per_chunk": per_chunk}
    for key, label in EVENTS.items():
        if key not in raw:
            continue
        cells = [f"{raw[key]:,.0f}"]
        cells += [f"{per_chunk[v][key] - raw[key]:+,.0f}" for v in chosen if v != "raw"]
        table.add(label, *cells)
    if "openai-v2" in per_chunk:
        for v in chosen:
            if v in ("raw", "openai-v2"):
                continue
            ours = per_chunk[v]["Ir"] - raw["Ir"]
            theirs = per_chunk["openai-v2"]["Ir"] - raw["Ir"]
            table.notes.append(f"{v}: instructions above raw / openai-v2's: {ours / theirs:.2f}")
    emit("profile-callgrind", [table], data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
