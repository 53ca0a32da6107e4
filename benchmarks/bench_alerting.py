"""Benchmark 6: alerting, time to detect. steadystream's rules side by side with Sloth's.

For alerts, "performance" is how soon an incident pages (or tickets) and how often nothing
pages for nothing. Both rule sets run in ``promtool test rules`` (the real rule engine) over the
same input series, one shape at a time, each shape after 3 days of healthy history:

- **steadystream**: the rules ``steadystream generate`` writes (``generate.render_all``) for the
  chat-gateway example spec (``examples/chat-gateway/slo.yaml``) with one SLO, stream errors
  (``stream_errors_total`` / ``stream_requests_total``) at 99.5 %, and no ``alerting`` section:
  the generator's default tiers, guards and failure-class settings (``--alerting example``
  keeps the example's own tuning instead).
- **Sloth**: Sloth's own generated output for its getting-started example
  (``benchmarks/sloth/getting-started.yml``), with the SLI queries, the objective and the
  severity labels substituted for the same SLO (see ``benchmarks/sloth/README.md``).

A page is any alert firing with ``severity="critical"``, a ticket any with
``severity="warning"``; nothing else about the alerts is assumed, so the harness measures
whatever rules the generator produces. Per shape and rule set, one promtool run evaluates the
rules minute by minute and then answers, from the ``ALERTS`` series the rules wrote, a query
for the first minute each alert was firing (``min_over_time(timestamp(ALERTS{...})[..:1m])``).
promtool prints the answer as the "got" of a deliberately empty expectation; the harness reads
it from there (and ``tests/test_bench_alerting.py`` proves the reading against promtool's own
pass/fail at the minute found and the minute before). One run per shape is the cheapest way:
the cost of a run is the rule evaluation over the 3 days of history, the same whatever is asked
at the end, so a search over eval times with ``alert_rule_test`` would pay it once per probe.

Targets: on every burn shape, steadystream's first page at or before Sloth's; a hard outage
paged within 5 m; traffic stopping dead paged within 15 m; no false page on the shapes that
should not page (single failure at night, flapping below the budget, slow burn, low traffic).
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from _common import ROOT, Table, emit, verdict
from steadystream import conventions as c

HERE = Path(__file__).resolve().parent
EXAMPLE_SPEC = ROOT / "examples" / "chat-gateway" / "slo.yaml"
SLOTH_EXAMPLE = HERE / "sloth" / "getting-started.yml"

SLO_NAME = "stream-errors"
OBJECTIVE_PCT = 99.5
HISTORY_MIN = 3 * 24 * 60  # 3 days of healthy history before every incident
PAGE, TICKET = "critical", "warning"
SEVERITIES = {PAGE: "page", TICKET: "ticket"}

# Every series carries these labels; the spec's selector (job) and service are added to them.
MODEL_LABELS = {c.LABEL_MODEL: "gpt-4o", c.LABEL_PROVIDER: "openai"}

# A healthy service: 0.1 % of streams fail (a fifth of the 99.5 % budget), 0.5 % are retried
# once on a network error, streams last 20 s on average, one process admits 256 at once.
HEALTHY_ERROR_RATIO = 0.001
HEALTHY_RETRY_RATIO = 0.005
STREAM_SECONDS = 20.0
MAX_CONCURRENT = 256
# stream.retry in the example spec: retries at most 20 % of streams plus 1 per second; a
# failing stream wants its 3 retries, what the budget refuses is counted as exhausted.
RETRY_BUDGET_SHARE, RETRY_FLOOR_PER_MIN, MAX_RETRIES = 0.2, 60.0, 3


# ------------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Phase:
    """``minutes`` of traffic: streams finishing per minute and what share of them fails.

    ``rejected`` is the share turned away at ingress (outcome ``rejected``; an error of the
    SLO, as the instrumentation counts it); ``errors`` the share of the rest that fails.
    """

    minutes: int
    per_min: float
    errors: float = HEALTHY_ERROR_RATIO
    rejected: float = 0.0
    error_class: str = c.ERROR_CLASS_UPSTREAM_5XX
    retry_reason: str = c.RETRY_REASON_5XX
    in_flight: float | None = None  # None: per_min x stream duration, capped

    def flight(self) -> float:
        if self.in_flight is not None:
            return self.in_flight
        return min(MAX_CONCURRENT, round(self.per_min / 60 * STREAM_SECONDS))


@dataclass(frozen=True)
class Shape:
    """An incident: healthy ``history`` then the ``incident`` phases, judged from its start.

    ``page``/``ticket``: True when the shape must page (ticket), False when any page (ticket)
    is a false one, None when either is acceptable. ``burn``: a burn-rate shape, where
    steadystream's first page must come no later than Sloth's.
    """

    key: str
    label: str
    history: tuple[Phase, ...]
    incident: tuple[Phase, ...]
    page: bool | None
    ticket: bool | None
    burn: bool = False
    page_within: int | None = None  # target: paged within this many minutes

    @property
    def history_min(self) -> int:
        return sum(p.minutes for p in self.history)

    @property
    def incident_min(self) -> int:
        return sum(p.minutes for p in self.incident)


BUSY = 300.0  # 5 streams per second
NIGHT = 10 / 60  # 10 streams per hour
LOW = 1.0  # 1 stream per minute


def _trim(phases: Sequence[Phase], minutes: int) -> tuple[Phase, ...]:
    """The last ``minutes`` of ``phases`` (a shorter history, for a quick run)."""
    out: list[Phase] = []
    left = minutes
    for p in reversed(phases):
        if left <= 0:
            break
        take = min(p.minutes, left)
        out.append(replace(p, minutes=take))
        left -= take
    return tuple(reversed(out))


def _diurnal_day(night_per_min: float) -> list[Phase]:
    """One day of a service with quiet nights: busy 14 h, an evening that thins out hour by
    hour, 6 h of night at ``night_per_min``, a morning that fills up again (24 h in all)."""
    evening = [Phase(60, r) for r in (60.0, 12.0, 3.0)]
    return [Phase(14 * 60, BUSY), *evening, Phase(6 * 60, night_per_min), *reversed(evening)]


def _flapping(on_errors: float, hours: int) -> tuple[Phase, ...]:
    return (Phase(5, BUSY, on_errors), Phase(10, BUSY)) * (hours * 4)


def shapes(history_min: int = HISTORY_MIN) -> tuple[Shape, ...]:
    """Every incident shape, each after ``history_min`` minutes of healthy history."""
    healthy = (Phase(history_min, BUSY),)
    # A busy day and an evening before the night the failure happens in; before that, whole
    # days with quiet nights, as far back as the history goes.
    night_before = [*_diurnal_day(NIGHT) * (history_min // (24 * 60) + 1)]
    night_before += [Phase(14 * 60, BUSY), *(Phase(60, r) for r in (60.0, 12.0, 3.0))]
    return (
        Shape(
            "hard-outage",
            "hard outage: 100 % errors at 5 streams/s",
            healthy,
            (Phase(60, BUSY, 1.0),),
            page=True,
            ticket=None,
            page_within=5,
        ),
        Shape(
            "fast-burn",
            "fast burn: 10 % errors (20x)",
            healthy,
            (Phase(180, BUSY, 0.10),),
            page=True,
            ticket=None,
            burn=True,
        ),
        Shape(
            "medium-burn",
            "medium burn: 5 % errors (10x)",
            healthy,
            (Phase(8 * 60, BUSY, 0.05),),
            page=True,
            ticket=None,
            burn=True,
        ),
        Shape(
            "slow-burn",
            "slow burn: 2 % errors (4x)",
            healthy,
            (Phase(18 * 60, BUSY, 0.02),),
            page=False,
            ticket=True,
            burn=True,
        ),
        Shape(
            "low-traffic",
            "low traffic: 1 stream/min, 1 failure every 4 h (0.8x)",
            (Phase(history_min, LOW, 0.0),),
            (Phase(60, LOW, 0.0), *((Phase(1, LOW, 1.0), Phase(239, LOW, 0.0)) * 3)),
            page=False,
            ticket=False,
        ),
        Shape(
            "night-failure",
            "night: 10 streams/h, one failure",
            _trim(night_before, history_min),
            (Phase(120, NIGHT, 0.0), Phase(1, 1.0, 1.0), Phase(239, NIGHT, 0.0)),
            page=False,
            ticket=False,
        ),
        Shape(
            "traffic-stops",
            "traffic stops dead (from 5 streams/s)",
            healthy,
            (Phase(60, 0.0),),
            page=True,
            ticket=None,
            page_within=15,
        ),
        Shape(
            "shedding-outage",
            "outage under ingress shedding: 90 % rejected, the rest fail",
            healthy,
            (
                Phase(
                    60,
                    BUSY,
                    1.0,
                    rejected=0.9,
                    error_class=c.ERROR_CLASS_FIRST_TOKEN_TIMEOUT,
                    retry_reason=c.RETRY_REASON_FIRST_TOKEN_TIMEOUT,
                    in_flight=MAX_CONCURRENT,
                ),
            ),
            page=True,
            ticket=None,
        ),
        Shape(
            "flapping",
            "flapping below budget: 1 % errors 5 m on / 10 m off (0.8x)",
            healthy,
            _flapping(0.01, 12),
            page=False,
            ticket=False,
        ),
    )


SHAPES = shapes()


# ------------------------------------------------------------------------------------ series
def _compress(values: Sequence[float]) -> str:
    """promtool's expanding notation: runs of equal steps as ``a+bxn`` (a, a+b, ... a+n*b)."""
    out: list[str] = []
    i, n = 0, len(values)
    while i < n:
        j = i
        if i + 1 < n:
            step = values[i + 1] - values[i]
            j = i + 1
            while j + 1 < n and values[j + 1] - values[j] == step:
                j += 1
            if j - i >= 2:
                sign = "+" if step >= 0 else "-"
                out.append(f"{_num(values[i])}{sign}{_num(abs(step))}x{j - i}")
                i = j + 1
                continue
        out.append(_num(values[i]))
        i += 1
    return " ".join(out)


def _num(v: float) -> str:
    """A sample value exactly (``:g`` would print 1296000 as 1.296e+06)."""
    return str(int(v)) if v.is_integer() else repr(v)


def input_series(shape: Shape, base: dict[str, str]) -> list[dict[str, str]]:
    """The shape as promtool input series (one sample per minute, from minute 0).

    Counters count whole streams (a running total of each phase's rate, floored), so a quiet
    night has a stream every 6 minutes, not a sixth of one every minute. Every series exists
    from minute 0 (the instrumentation creates its label children up front).
    """
    phases = (*shape.history, *shape.incident)
    acc: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    gauges: dict[str, list[float]] = {c.IN_FLIGHT: [], c.INGRESS_MAX_CONCURRENT: []}

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted(labels.items()))

    # Declare every series the whole run will touch, so all start at 0 together.
    names = [
        key(c.REQUESTS_TOTAL, outcome=c.OUTCOME_OK),
        key(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ERROR),
        key(c.RETRY_TOTAL, reason=c.RETRY_REASON_NETWORK),
        key(c.RETRY_BUDGET_EXHAUSTED_TOTAL),
    ]
    for p in phases:
        names.append(key(c.ERRORS_TOTAL, error_class=p.error_class))
        names.append(key(c.RETRY_TOTAL, reason=p.retry_reason))
        if p.rejected:
            names += [
                key(c.REQUESTS_TOTAL, outcome=c.OUTCOME_REJECTED),
                key(c.ERRORS_TOTAL, error_class=c.ERROR_CLASS_REJECTED),
                key(c.REJECTED_TOTAL, reason=c.REJECT_CONCURRENCY),
            ]
    for k in dict.fromkeys(names):
        acc[k] = 0.0
        counters[k] = [0.0]
    gauges[c.IN_FLIGHT].append(float(phases[0].flight()))
    gauges[c.INGRESS_MAX_CONCURRENT].append(float(MAX_CONCURRENT))

    for p in phases:
        rejected = p.per_min * p.rejected
        admitted = p.per_min - rejected
        failed = admitted * p.errors
        network = admitted * HEALTHY_RETRY_RATIO
        budget = max(0.0, admitted * RETRY_BUDGET_SHARE + RETRY_FLOOR_PER_MIN - network)
        wanted = failed * MAX_RETRIES
        step = {
            key(c.REQUESTS_TOTAL, outcome=c.OUTCOME_OK): admitted - failed,
            key(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ERROR): failed,
            key(c.ERRORS_TOTAL, error_class=p.error_class): failed,
            key(c.RETRY_TOTAL, reason=c.RETRY_REASON_NETWORK): network,
            key(c.RETRY_TOTAL, reason=p.retry_reason): min(wanted, budget),
            key(c.RETRY_BUDGET_EXHAUSTED_TOTAL): max(0.0, wanted - budget),
        }
        if rejected:
            step[key(c.REQUESTS_TOTAL, outcome=c.OUTCOME_REJECTED)] = rejected
            step[key(c.ERRORS_TOTAL, error_class=c.ERROR_CLASS_REJECTED)] = rejected
            step[key(c.REJECTED_TOTAL, reason=c.REJECT_CONCURRENCY)] = rejected
        for _ in range(p.minutes):
            for k, values in counters.items():
                acc[k] += step.get(k, 0.0)
                # A tiny epsilon so 0.1 + 0.2 + ... lands on the whole number it should.
                values.append(float(math.floor(acc[k] + 1e-9)))
            gauges[c.IN_FLIGHT].append(float(p.flight()))
            gauges[c.INGRESS_MAX_CONCURRENT].append(float(MAX_CONCURRENT))

    def selector(name: str, labels: Iterable[tuple[str, str]]) -> str:
        merged = {**base, **MODEL_LABELS, **dict(labels)}
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(merged.items()))
        return f"{name}{{{inner}}}"

    out = [{"series": selector(n, lb), "values": _compress(v)} for (n, lb), v in counters.items()]
    out += [{"series": selector(n, ()), "values": _compress(v)} for n, v in gauges.items()]
    return out


# ------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class RuleSet:
    name: str
    text: str  # the rule file, YAML


def bench_spec(example: Path = EXAMPLE_SPEC, alerting: str = "defaults") -> dict[str, Any]:
    """The example spec with one SLO, stream errors at 99.5 % over 30 days: the objective
    and the period of Sloth's side, so both rule sets judge the same SLO with the same burn
    factors (14.4, 6, 3, 1).

    ``alerting="defaults"`` drops the example's ``alerting`` section, so the rules are what the
    generator writes for a spec that does not tune its alerts (its default tiers, guards and
    failure-class settings); ``"example"`` keeps the example's own tuning.
    """
    spec = yaml.safe_load(example.read_text(encoding="utf-8"))
    slos = [s for s in spec["slos"] if s["name"] == SLO_NAME]
    if len(slos) != 1:
        raise SystemExit(f"{example}: expected one SLO named {SLO_NAME!r}")
    slos[0]["objective"] = f"{OBJECTIVE_PCT}%"
    spec["slos"] = slos
    spec["period"] = "30d"
    if alerting == "defaults":
        spec.pop("alerting", None)
    elif alerting != "example":
        raise ValueError(f"alerting must be 'defaults' or 'example', not {alerting!r}")
    return spec


def steadystream_rules(spec: dict[str, Any], tmp: Path) -> tuple[RuleSet, dict[str, str]]:
    """steadystream's rules for ``spec``, as ``steadystream generate`` writes them, and the
    label matchers every series must carry (the spec's selector and service)."""
    import steadystream as ss
    from steadystream import generate
    from steadystream.alerts import rules_paths

    path = tmp / "slo.yaml"
    data = yaml.safe_dump(spec, sort_keys=False).encode()
    path.write_bytes(data)
    loaded = ss.load_spec(path)
    files = generate.render_all(loaded, generate.Source.from_bytes(path.name, data))
    rules, _, _ = rules_paths(loaded.service)
    base = {**dict(loaded.selector), c.LABEL_SERVICE: loaded.service}
    return RuleSet("steadystream", files[rules]), base


def _sloth_queries(base: dict[str, str]) -> tuple[str, str]:
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(base.items()))
    return (
        f"sum(rate({c.ERRORS_TOTAL}{{{matchers}}}[{{{{.window}}}}]))",
        f"sum(rate({c.REQUESTS_TOTAL}{{{matchers}}}[{{{{.window}}}}]))",
    )


# What Sloth's getting-started example says, and what Sloth renders from it (Go's %g of a
# float64, which Python's repr matches): objective 99.9 -> 0.999..., budget (100-99.9)/100.
SLOTH_ERROR_QUERY = (
    'sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))'
)
SLOTH_TOTAL_QUERY = 'sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))'
SLOTH_OBJECTIVE = 99.9
SLOTH_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SLOTH_SEVERITIES = {"pageteam": PAGE, "slack": TICKET}


def sloth_rules(base: dict[str, str], example: Path = SLOTH_EXAMPLE) -> RuleSet:
    """Sloth's generated getting-started rules, templated for the stream-errors SLO at 99.5 %.

    Exactly the strings Sloth's templates write: each SLI query with its window, the
    objective ratio ``objective/100`` and the budget ratio ``(100-objective)/100`` as Go's %g
    prints them. The page and ticket alerts' ``severity`` labels (set by the example's
    ``page_alert``/``ticket_alert``) become ``critical`` and ``warning``. Every substitution
    must hit the number of places it should, or the example changed under us.
    """
    text = example.read_text(encoding="utf-8")
    errors, total = _sloth_queries(base)
    subs: list[tuple[str, str, int]] = []
    for w in SLOTH_WINDOWS:
        subs.append(
            (SLOTH_ERROR_QUERY.replace("{{.window}}", w), errors.replace("{{.window}}", w), 1)
        )
        subs.append(
            (SLOTH_TOTAL_QUERY.replace("{{.window}}", w), total.replace("{{.window}}", w), 1)
        )
    subs += [
        (f"vector({SLOTH_OBJECTIVE / 100!r})", f"vector({OBJECTIVE_PCT / 100!r})", 1),
        (f"vector(1-{SLOTH_OBJECTIVE / 100!r})", f"vector(1-{OBJECTIVE_PCT / 100!r})", 1),
        (f"* {(100 - SLOTH_OBJECTIVE) / 100!r})", f"* {(100 - OBJECTIVE_PCT) / 100!r})", 8),
        (f'sloth_objective: "{SLOTH_OBJECTIVE:g}"', f'sloth_objective: "{OBJECTIVE_PCT:g}"', 1),
    ]
    subs += [
        (f"severity: {old}\n", f"severity: {new}\n", 1) for old, new in SLOTH_SEVERITIES.items()
    ]
    for old, new, count in subs:
        found = text.count(old)
        if found != count:
            raise SystemExit(f"{example}: expected {count} x {old!r}, found {found}")
        text = text.replace(old, new)
    return RuleSet("Sloth", text)


# -------------------------------------------------------------------------------- measurement
_GOT = re.compile(r"^\s*got:\s*(.*)$", re.M)
_SAMPLE = re.compile(r"\{([^{}]*)\}\s+(\S+?)(?=,\s*\{|\s*$)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Firing:
    """When an alert first fired, in minutes from the incident's start (negative: in the
    healthy history), with the labels it fired with (alertname, severity, slo, failure_class)."""

    alertname: str
    severity: str
    first_min: float
    labels: dict[str, str]


@dataclass
class Outcome:
    """What one promtool run of one shape under one rule set found."""

    shape: str
    rules: str
    incident: list[Firing] = field(default_factory=list)  # first firing after the start
    history: list[Firing] = field(default_factory=list)  # any firing before it
    minutes_firing: dict[str, float] = field(default_factory=dict)  # severity -> minutes
    seconds: float = 0.0

    def first(self, severity: str) -> Firing | None:
        hits = [f for f in self.incident if f.severity == severity]
        return min(hits, key=lambda f: f.first_min) if hits else None


def _probes(shape: Shape) -> list[dict[str, Any]]:
    """The promql_expr_tests whose (empty) expectation fails with the answer in "got"."""
    start, end = shape.history_min, shape.history_min + shape.incident_min
    firing = f'ALERTS{{alertstate="firing",severity=~"{PAGE}|{TICKET}"}}'
    by = "alertname, severity, slo, failure_class"

    def first(range_min: int, probe: str) -> str:
        return (
            f"label_replace((min by ({by}) (min_over_time(timestamp({firing})[{range_min}m:1m]))"
            f' - {start * 60}) / 60, "probe", "{probe}", "", "")'
        )

    minutes = (
        f"label_replace(sum by (severity) (count_over_time({firing}[{shape.incident_min}m])),"
        ' "probe", "minutes", "", "")'
    )
    return [
        {"expr": first(shape.incident_min, "incident"), "eval_time": f"{end}m", "exp_samples": []},
        {"expr": first(start, "history"), "eval_time": f"{start}m", "exp_samples": []},
        {"expr": minutes, "eval_time": f"{end}m", "exp_samples": []},
    ]


def _write(
    shape: Shape, rules: RuleSet, base: dict[str, str], checks: list[dict[str, Any]], out: Path
) -> Path:
    """``rules`` and a promtool test of ``shape`` asking ``checks``, in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "rules.yaml").write_text(rules.text, encoding="utf-8")
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        # promtool orders groups it is not told the order of by an unstable sort over a map,
        # so recordings and the alerts reading them would swap at random, moving an alert by a
        # minute from run to run. File order: every recording is fresh when the alerts read it.
        "group_eval_order": [g["name"] for g in yaml.safe_load(rules.text)["groups"]],
        "tests": [
            {
                "name": shape.key,
                "interval": "1m",
                "input_series": input_series(shape, base),
                "promql_expr_test": checks,
            }
        ],
    }
    path = out / "test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=1 << 20), encoding="utf-8")
    return path


def write_test(shape: Shape, rules: RuleSet, base: dict[str, str], out: Path) -> Path:
    """Write ``rules`` and the measuring promtool test of ``shape`` into ``out``."""
    return _write(shape, rules, base, _probes(shape), out)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise SystemExit("promtool is not on PATH: run scripts/ensure-prometheus.sh (make tools)")
    return path


def parse_got(output: str) -> list[tuple[dict[str, str], float]]:
    """Every sample promtool printed as ``got: {labels} value, ...``."""
    samples = []
    for line in _GOT.findall(output):
        if line.strip() in ("", "nil", "[]"):
            continue
        found = _SAMPLE.findall(line)
        if not found:
            raise RuntimeError(f"cannot read promtool's answer: {line!r}")
        for labels, value in found:
            samples.append((dict(_LABEL.findall(labels)), float(value)))
    return samples


def measure(shape: Shape, rules: RuleSet, base: dict[str, str], work: Path) -> Outcome:
    """Run ``rules`` over ``shape`` in promtool; when every alert first fired."""
    test = write_test(shape, rules, base, work / f"{rules.name}-{shape.key}")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [promtool(), "test", "rules", test.name],
        cwd=test.parent,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    output = proc.stdout + proc.stderr
    if proc.returncode == 0 and "SUCCESS" not in output:
        raise RuntimeError(f"promtool {test}: neither SUCCESS nor a failure:\n{output}")
    if proc.returncode != 0 and "got:" not in output:
        raise RuntimeError(f"promtool {test} failed (exit {proc.returncode}):\n{output}")
    result = Outcome(shape.key, rules.name, seconds=elapsed)
    for labels, value in parse_got(output):
        probe = labels.pop("probe", "")
        if probe == "minutes":
            result.minutes_firing[labels.get("severity", "")] = value
            continue
        firing = Firing(labels.get("alertname", ""), labels.get("severity", ""), value, labels)
        if probe == "incident":
            result.incident.append(firing)
        elif probe == "history":
            result.history.append(firing)
        else:
            raise RuntimeError(f"promtool {test}: a sample from no probe: {labels}")
    return result


def confirm_first(
    shape: Shape, rules: RuleSet, base: dict[str, str], severity: str, minute: int, work: Path
) -> subprocess.CompletedProcess[str]:
    """promtool's own verdict on "the first ``severity`` alert fires ``minute`` minutes into
    ``shape``": one firing at that minute, none at the minute before (nor ever before it).

    The reading of ``measure`` checked by plain assertions: the returned run passes (exit 0)
    exactly when the minute ``measure`` found is right.
    """
    start = shape.history_min
    firing = f'ALERTS{{alertstate="firing",severity="{severity}"}}'
    at, before = start + minute, start + minute - 1
    checks = [
        {"expr": f"count({firing}) > bool 0", "eval_time": f"{at}m", "exp_samples": [{"value": 1}]},
        {
            "expr": f"count_over_time({firing}[{before}m])",
            "eval_time": f"{before}m",
            "exp_samples": [],
        },
    ]
    path = _write(shape, rules, base, checks, work / f"confirm-{rules.name}-{shape.key}-{minute}")
    return subprocess.run(
        [promtool(), "test", "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def build_rule_sets(
    tmp: Path, example: Path = EXAMPLE_SPEC, alerting: str = "defaults"
) -> tuple[list[RuleSet], dict[str, str]]:
    """steadystream's rules and Sloth's for the benchmark's SLO, and the series' labels."""
    ours, base = steadystream_rules(bench_spec(example, alerting), tmp)
    return [ours, sloth_rules(base)], base


def run_all(
    shapes: Sequence[Shape],
    rule_sets: Sequence[RuleSet],
    base: dict[str, str],
    work: Path,
    jobs: int,
) -> dict[tuple[str, str], Outcome]:
    jobs_list = [(s, r) for s in shapes for r in rule_sets]
    # The longest runs first, so two workers finish together.
    jobs_list.sort(key=lambda sr: -(sr[0].history_min + sr[0].incident_min))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {(s.key, r.name): pool.submit(measure, s, r, base, work) for s, r in jobs_list}
        return {k: f.result() for k, f in futures.items()}


# ------------------------------------------------------------------------------------ report
def _fmt(f: Firing | None) -> str:
    if f is None:
        return "none"
    return f"+{f.first_min:g} m"


def _who(f: Firing | None) -> str:
    if f is None:
        return ""
    what = f.labels.get("failure_class") or f.labels.get("slo") or ""
    return f"{f.alertname}" + (f" ({what})" if what else "")


def judge(shape: Shape, ours: Outcome, sloth: Outcome) -> dict[str, tuple[bool, str]]:
    """The targets that apply to ``shape``: name -> (met, the figures behind it)."""
    page, sloth_page = ours.first(PAGE), sloth.first(PAGE)
    targets: dict[str, tuple[bool, str]] = {}
    if shape.burn and shape.page:
        # At or before Sloth's; a page where Sloth has none counts as at or before.
        met = page is not None and (sloth_page is None or page.first_min <= sloth_page.first_min)
        figure = f"{_fmt(page)} vs {_fmt(sloth_page)}"
        targets[f"{shape.key}: first page at or before Sloth's"] = (met, figure)
    if shape.page_within is not None:
        met = page is not None and page.first_min <= shape.page_within
        targets[f"{shape.key}: paged within {shape.page_within} m"] = (met, _fmt(page))
    if shape.page is False:
        targets[f"{shape.key}: no false page"] = (page is None, _fmt(page))
    return targets


def report(
    shapes: Sequence[Shape],
    outcomes: dict[tuple[str, str], Outcome],
    rule_names: Sequence[str],
    history_min: int = HISTORY_MIN,
    alerting: str = "defaults",
) -> tuple[list[Table], dict[str, bool], list[str]]:
    ours_name, sloth_name = rule_names
    history = f"{history_min / 1440:g} days" if history_min % 1440 == 0 else f"{history_min} m"
    table = Table(
        f"6. Alerting: time to detect, stream-errors SLO at 99.5 %, after {history} of healthy "
        "history (minutes from the incident's start)",
        [
            "incident",
            f"{ours_name} page",
            f"{ours_name} ticket",
            f"{sloth_name} page",
            f"{sloth_name} ticket",
            "expected",
            "false alerts",
        ],
    )
    judged: dict[str, tuple[bool, str]] = {}
    problems: list[str] = []
    for shape in shapes:
        ours, sloth = outcomes[(shape.key, ours_name)], outcomes[(shape.key, sloth_name)]
        false: list[str] = []
        for o in (ours, sloth):
            for sev, word in SEVERITIES.items():
                want = shape.page if sev == PAGE else shape.ticket
                if want is False and o.first(sev) is not None:
                    minutes = o.minutes_firing.get(sev, 0)
                    false.append(f"{o.rules}: {word} ({minutes:g} m firing)")
            if o.history:
                # Healthy history must be quiet for both, or the shape itself is wrong.
                names = sorted({f"{f.alertname}/{f.severity}" for f in o.history})
                problems.append(f"{shape.key}: {o.rules} alerted in the healthy history: {names}")
        expected = {True: "page", False: "no page", None: ""}[shape.page]
        if shape.ticket is True:
            expected += ", ticket"
        elif shape.ticket is False:
            expected += ", no ticket"
        table.add(
            shape.label,
            _fmt(ours.first(PAGE)),
            _fmt(ours.first(TICKET)),
            _fmt(sloth.first(PAGE)),
            _fmt(sloth.first(TICKET)),
            expected.strip(", "),
            "; ".join(false) or "none",
        )
        judged.update(judge(shape, ours, sloth))
    firsts = []
    for shape in shapes:
        f = outcomes[(shape.key, ours_name)].first(PAGE)
        if f is not None:
            firsts.append(f"{shape.key}: {_who(f)}")
    table.notes.append(
        "page = an alert firing with severity=critical, ticket = severity=warning; "
        "1-minute rule evaluation in promtool; +N m = first evaluation with the alert firing."
    )
    table.notes.append(f"{ours_name} first pages by: " + "; ".join(firsts))
    tickets = []
    for shape in shapes:
        f = outcomes[(shape.key, ours_name)].first(TICKET)
        if f is not None:
            tickets.append(f"{shape.key}: {_who(f)}")
    table.notes.append(f"{ours_name} first tickets by: " + "; ".join(tickets))
    tuning = "its default alerting" if alerting == "defaults" else "the example's alerting"
    table.notes.append(
        f"{ours_name}: examples/chat-gateway/slo.yaml with one SLO and {tuning}; "
        f"{sloth_name}: its getting-started example output templated. Both: 99.5 % over 30d."
    )
    summary = Table("6b. Alerting targets", ["target", f"{ours_name} (vs {sloth_name})", ""])
    for name, (met, figure) in judged.items():
        summary.add(name, figure, verdict(met))
    targets = {name: met for name, (met, _) in judged.items()}
    return [table, summary], targets, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated shape keys (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="promtool runs at once")
    parser.add_argument("--keep", type=Path, help="keep the rule and test files in this dir")
    parser.add_argument(
        "--alerting",
        choices=("defaults", "example"),
        default="defaults",
        help="steadystream's alerting: the generator's defaults, or the example spec's tuning",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=HISTORY_MIN,
        help="minutes of healthy history before each incident (default: 3 days)",
    )
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    known = {s.key: s for s in shapes(args.history)}
    unknown = [k for k in keys if k not in known]
    if unknown:
        parser.error(f"unknown shape(s): {', '.join(unknown)}; known: {', '.join(known)}")
    selected = [known[k] for k in keys] if keys else list(known.values())

    with tempfile.TemporaryDirectory(prefix="ss-bench-alert-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rule_sets, base = build_rule_sets(work, alerting=args.alerting)
        outcomes = run_all(selected, rule_sets, base, work, args.jobs)
        total = time.perf_counter() - t0
    tables, targets, problems = report(
        selected, outcomes, [r.name for r in rule_sets], args.history, args.alerting
    )
    tables[0].notes.append(
        f"{len(outcomes)} promtool runs, {args.jobs} at a time, {total:.0f} s in all "
        f"(promtool {_promtool_version()})."
    )
    emit(
        "alerting",
        tables,
        {
            "objective": OBJECTIVE_PCT,
            "history_minutes": HISTORY_MIN,
            "seconds": total,
            "targets": targets,
            "target_met": all(targets.values()) if targets else None,
            "problems": problems,
            "outcomes": {
                f"{s}/{r}": {
                    "incident": [vars(f) for f in o.incident],
                    "history": [vars(f) for f in o.history],
                    "minutes_firing": o.minutes_firing,
                    "seconds": round(o.seconds, 1),
                }
                for (s, r), o in outcomes.items()
            },
        },
    )
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


def _promtool_version() -> str:
    proc = subprocess.run([promtool(), "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"version (\S+)", proc.stdout + proc.stderr)
    return m.group(1) if m else "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
