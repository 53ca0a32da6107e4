"""Shared plumbing for the benchmarks: the machine, alternation, statistics, tables, JSON.

Every figure the benchmarks report is measured side by side in one run: the variants of one
benchmark take turns inside each round (the order rotates and reverses from round to round, so
neither a warm cache nor a noisy neighbour favours one variant), and a figure is the median
over the rounds with its spread (25th to 75th percentile) next to it. Ratios and differences are
computed per round, between variants measured seconds apart, and only then summarised.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------------------------ machine
def cpu_model() -> str:
    """The CPU model as /proc/cpuinfo names it (``model name``), or the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, Python and the versions that matter."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_1m_at_start": round(load, 2),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "steadystream_rev": _git_rev(),
        "versions": {
            d: _version(d)
            for d in (
                "openai",
                "httpx",
                "prometheus-client",
                "opentelemetry-sdk",
                "opentelemetry-instrumentation-openai-v2",
                "opentelemetry-util-genai",
            )
        },
    }


def machine_line(m: dict[str, Any]) -> str:
    """One line for the top of the table."""
    return (
        f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable, load {m['load_1m_at_start']}"
        f" at start), {m['python']}, {m['os']}, steadystream {m['steadystream_rev']}"
    )


# -------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Summary:
    """Median and interquartile spread of repeated measurements."""

    median: float
    p25: float
    p75: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        xs = sorted(values)
        if not xs:
            raise ValueError("no measurements")
        if len(xs) == 1:
            q1 = q3 = xs[0]
        else:
            q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
        return cls(statistics.median(xs), q1, q3, xs[0], xs[-1], len(xs))

    def as_dict(self) -> dict[str, float]:
        return {
            "median": self.median,
            "p25": self.p25,
            "p75": self.p75,
            "min": self.min,
            "max": self.max,
            "n": self.n,
        }

    def fmt(self, spec: str = ".0f", unit: str = "") -> str:
        """``median (p25–p75)``: the spread a reader needs to judge a difference."""
        return f"{self.median:{spec}}{unit} ({self.p25:{spec}}–{self.p75:{spec}})"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; ``nan`` for no values."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def round_order(names: Sequence[str], round_index: int) -> list[str]:
    """The order the variants run in, in round ``round_index``.

    Rotated by one each round and reversed every other round, so over the rounds every variant
    runs first, last and next to every other one.
    """
    k = round_index % len(names)
    order = list(names[k:]) + list(names[:k])
    if round_index % 2:
        order.reverse()
    return order


def alternate(
    variants: dict[str, Callable[[], float]], rounds: int, *, warmup: int = 1
) -> dict[str, list[float]]:
    """Run every variant once per round, alternating; return each variant's per-round values.

    ``warmup`` rounds run first and are discarded (imports, caches, allocator arenas). The
    garbage collector is run between measurements, not during them, so one variant's garbage is
    not collected on another's clock.
    """
    names = list(variants)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(-warmup, rounds):
        for name in round_order(names, r):
            gc.collect()
            value = variants[name]()
            if r >= 0:
                out[name].append(value)
    return out


def paired(
    baseline: Callable[[], float], variant: Callable[[], float], blocks: int, *, warmup: int = 1
) -> list[float]:
    """``variant``'s cost relative to ``baseline``'s, one ratio per block of four measurements
    run back to back: baseline, variant, variant, baseline (and the mirror order in every other
    block). Each callable measures once and returns its cost.

    A drift of the machine's speed within a block (a neighbour starting, the clock scaling) is
    close to linear over a few seconds, and the mirrored order cancels a linear drift exactly:
    the block's ratio is ``(v1 + v2) / (b1 + b2)``. Rounds of many variants (:func:`alternate`)
    put their variants tens of seconds apart instead, which is how a round-to-round swing
    becomes a ratio's noise. The garbage collector runs between measurements.
    """
    ratios: list[float] = []
    for k in range(-warmup, blocks):
        order = (baseline, variant, variant, baseline)
        if k % 2:
            order = (variant, baseline, baseline, variant)
        base = var = 0.0
        for fn in order:
            gc.collect()
            value = fn()
            if fn is baseline:
                base += value
            else:
                var += value
        if k >= 0:
            ratios.append(var / base)
    return ratios


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median of ``values``: the order
    statistics ``x(k)`` and ``x(n+1-k)`` with the largest ``k`` whose binomial coverage is at
    least ``level``. ``(min, max)`` when ``values`` are too few for ``level``."""
    xs = sorted(values)
    n = len(xs)
    if not n:
        raise ValueError("no measurements")
    # P(fewer than k of n values fall below the median) for a fair coin, k = 1, 2, ...
    k, tail = 0, 0.0
    while k < n // 2:
        nxt = tail + math.comb(n, k) / 2**n
        if 2 * nxt > 1 - level:
            break
        tail = nxt
        k += 1
    if k == 0:
        return xs[0], xs[-1]
    return xs[k - 1], xs[n - k]


# -------------------------------------------------------------------------------------- table
@dataclass
class Table:
    """A plain-text table, also renderable as Markdown for the README."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def _widths(self) -> list[int]:
        cols = [self.header, *self.rows]
        return [max(len(r[i]) for r in cols) for i in range(len(self.header))]

    def text(self) -> str:
        w = self._widths()
        line = "  ".join("-" * x for x in w)
        out = [
            self.title,
            line,
            "  ".join(h.ljust(x) for h, x in zip(self.header, w, strict=True)),
            line,
        ]
        out += ["  ".join(c.ljust(x) for c, x in zip(r, w, strict=True)) for r in self.rows]
        out.append(line)
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"**{self.title}**", ""]
        out.append("| " + " | ".join(self.header) + " |")
        out.append("|" + "|".join("---" for _ in self.header) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "header": self.header, "rows": self.rows, "notes": self.notes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Table:
        return cls(d["title"], d["header"], d["rows"], d["notes"])


def verdict(ok: bool | None) -> str:
    """Table cell for a target: met, missed, or not measurable in this run."""
    return {True: "met", False: "MISSED", None: "n/a"}[ok]


# --------------------------------------------------------------------------------------- output
def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (gitignored) and return its path. Keys keep
    the order the benchmark wrote them in, so its named ``targets`` read in the order of its
    tables, not alphabetically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def emit(name: str, tables: list[Table], data: dict[str, Any]) -> None:
    """Print the tables and write the JSON result (tables included) for ``run.py`` to merge."""
    payload = {"benchmark": name, "machine": machine(), "tables": [t.as_dict() for t in tables]}
    payload.update(data)
    path = write_result(name, payload)
    for t in tables:
        print(t.text())
        print()
    print(f"[{name}] results: {path.relative_to(ROOT)}", file=sys.stderr)


async def loop_lag_ticker(stop: Any, lags: list[float], period: float = 0.01) -> None:
    """Until ``stop`` (an ``asyncio.Event``) is set: sleep ``period`` on the running loop and
    append how much later than asked each sleep ended (the event-loop lag), in seconds."""
    import asyncio

    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(period)
        lags.append(loop.time() - t - period)


def plain_client(url: str) -> Any:
    """An ``AsyncOpenAI`` as a service creates it (the SDK's own timeouts), without the SDK's
    retries: raw streams get no retry, and ``responses_stream`` applies the spec's timeouts and
    retries to its own copy."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)


async def open_responses(
    mode: str, client: Any, monitor: Any, *, model: str, prompt: str, deltas: int
) -> Any:
    """A Responses stream of ``deltas`` text deltas: the raw client's (``mode == "raw"``; a
    background response with an idempotency key, as ``responses_stream`` sends) or
    ``responses_stream`` over the same client."""
    import uuid

    from steadystream import conventions as c
    from steadystream.instrumentation.openai import responses_stream

    if mode == "raw":
        return await client.responses.create(
            model=model,
            input=prompt,
            stream=True,
            background=True,
            max_output_tokens=deltas,
            extra_headers={c.HEADER_IDEMPOTENCY_KEY: f"ss-{uuid.uuid4().hex}"},
        )
    return responses_stream(monitor, client, model=model, input=prompt, max_output_tokens=deltas)
