"""Generated promtool unit tests: every alert fires on synthetic series at the expected minute
with the expected labels and annotations, and stays silent on healthy and low-traffic series.

The synthetic counters grow linearly from zero and are sampled every minute, so every
``increase`` over 5 m is an exact integer (Prometheus does not extrapolate a counter below
zero, and a full window needs no extrapolation at all). The expected values below repeat the
rules' arithmetic in the same order on the same IEEE doubles, so annotation text such as
``4.2%`` or ``exhausted in 20h 34m 47s`` is predicted exactly, not approximately.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import conventions as c
from ..catalog import names as n
from ..catalog.alerting import fc_signals_with_scenarios
from ..catalog.promql import dur, matcher_labels, quote
from ..catalog.signal import Signal
from ..spec import SLO, Spec
from ._rules import (
    SAMPLES_PER_5M,
    BurnAlert,
    burn_alerts,
    error_budget,
    expected,
    fc_description,
    rule_groups,
)


def ceil_minutes(seconds: float | None) -> int:
    """Whole evaluation minutes an alert's ``for`` lasts (the 1 m SLI interval)."""
    return 0 if not seconds else math.ceil(seconds / 60)


#: Synthetic series carry these on top of the spec's matchers, as the instrumentation does.
SERIES_LABELS = {c.LABEL_MODEL: "gpt-4.1", c.LABEL_PROVIDER: "openai"}
#: Evaluation step of the tests (and of the SLI rule groups).
STEP_MINUTES = 1


def _series(metric: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f"{k}={quote(v)}" for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def _linear(per_minute: int, minutes: int) -> str:
    """A counter from 0 growing by ``per_minute`` each minute, for ``minutes`` minutes."""
    return f"0+{per_minute}x{minutes}"


def _flat(value: float, minutes: int) -> str:
    return f"{value:g}+0x{minutes}"


def _explicit(values: list[int]) -> str:
    return " ".join(str(v) for v in values)


@dataclass
class Case:
    """One promtool test group: input series, and what each checked alert does when."""

    name: str
    series: list[tuple[str, str]]
    # (alert name, minute, [(labels, annotations)]): the exact alerts firing at that minute.
    checks: list[tuple[str, int, list[tuple[dict[str, str], dict[str, str]]]]] = field(
        default_factory=list
    )

    def to_yaml(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval": f"{STEP_MINUTES}m",
            "input_series": [{"series": s, "values": v} for s, v in self.series],
            "alert_rule_test": [
                {
                    "eval_time": f"{minute}m",
                    "alertname": alert,
                    "exp_alerts": [
                        {"exp_labels": labels, "exp_annotations": annotations}
                        for labels, annotations in sorted(
                            alerts, key=lambda a: sorted(a[0].items())
                        )
                    ],
                }
                for alert, minute, alerts in self.checks
            ],
        }


def _labels(signal: Signal) -> dict[str, str]:
    return {
        **dict(signal.labels),
        n.LABEL_SEVERITY: signal.severity,
        n.LABEL_FAILURE_CLASS: signal.failure_class,
    }


def _annotations(signal: Signal, description: str) -> dict[str, str]:
    return {
        "summary": signal.summary,
        "description": description,
        "runbook_url": signal.runbook,
        "dashboard_url": signal.dashboard,
    }


# ------------------------------------------------------------------------------- burn alerts
def _sli_series(
    spec: Spec, slo: SLO, bad: str, total: str, good: str | None = None
) -> list[tuple[str, str]]:
    """Input series giving ``slo`` the bad and total event counters given (promtool notation).

    Latency SLOs are fed through their histogram: ``_count`` is all events and the bucket at
    the threshold the good ones (``good``), as the instrumentation exposes them.
    """
    base = {**matcher_labels(spec), **SERIES_LABELS}
    lat = slo.indicator.latency
    if lat is not None:
        assert good is not None
        return [
            (_series(c.count(lat.metric), base), total),
            (_series(c.bucket(lat.metric), {**base, "le": c.le_label(lat.threshold_ms)}), good),
        ]
    errs = slo.indicator.errors
    assert errs is not None
    err_labels = (
        {c.LABEL_ERROR_CLASS: c.ERROR_CLASS_UPSTREAM_5XX} if errs.errors == c.ERRORS_TOTAL else {}
    )
    total_labels = {c.LABEL_OUTCOME: c.OUTCOME_OK} if errs.total == c.REQUESTS_TOTAL else {}
    return [
        (_series(errs.errors, {**base, **err_labels}), bad),
        (_series(errs.total, {**base, **total_labels}), total),
    ]


def _window_sum(per_minute: int, minute: int, window: float) -> int:
    """``sum_over_time`` of the recorded 5 m increases of a counter growing ``per_minute``
    from minute 0, at ``minute``: samples from minute 1 (the first with two points) within
    the closed range ``[minute - window, minute]``."""
    first = max(1, minute - int(window // 60))
    return sum(per_minute * min(s, 5) for s in range(first, minute + 1))


def _pick_bad(budget: float, low: float, high: float, factor: float) -> tuple[int, int]:
    """(bad, total) per minute whose burn rate is above ``factor``, aiming between ``low``
    and ``high`` error ratios."""
    totals = (1000, 10_000, 100_000)
    for total in totals:
        bad = min(total, max(1, round((low + high) / 2 * total)))
        if (bad / total) / budget > factor and bad / total < high:
            return bad, total
    for total in totals:
        bad = min(total, max(1, round((low + high) / 2 * total)))
        if (bad / total) / budget > factor:
            return bad, total
    return totals[-1], totals[-1]


@dataclass
class _SloRun:
    """One SLO's part of a burn-rate test: its series and the alerts it fires at each minute."""

    slo: SLO
    label: str
    series: Callable[[int], list[tuple[str, str]]]
    expect: Callable[[int], list[tuple[dict[str, str], dict[str, str]]]]
    minutes: list[int]


def _burn_runs(spec: Spec) -> dict[str, list[_SloRun]]:
    """Per scenario (one per tier, healthy, low traffic), each SLO's run."""
    alerts = burn_alerts(spec)
    min_events = spec.alerting.min_events
    runs: dict[str, list[_SloRun]] = {}
    for slo in spec.slos:
        mine = [a for a in alerts if a.slo.name == slo.name]
        if not mine:
            continue
        budget = error_budget(slo)
        factors = sorted({a.signal.threshold for a in mine})

        def fire_minute(a: BurnAlert, total: int) -> int:
            # First minute the low-traffic floor holds over the long window, plus ``for``.
            minute = 1
            while (
                min_events > 0 and _window_sum(total, minute, a.long) / SAMPLES_PER_5M < min_events
            ):
                minute += 1
            return minute + ceil_minutes(a.signal.for_)

        def expect(
            minute: int,
            bad: int,
            total: int,
            mine: list[BurnAlert] = mine,
            budget: float = budget,
        ) -> list[tuple[dict[str, str], dict[str, str]]]:
            # The same operations, in the same order, as the recording rules and annotations.
            out = []
            ratio = bad / total
            burn = ratio / budget
            remaining = 1 - ratio / budget
            exhaustion = remaining * spec.period / burn if burn > 0 else None
            for a in mine:
                if burn > a.signal.threshold and fire_minute(a, total) <= minute:
                    ctx = {"value": burn, "remaining": remaining, "exhaustion": exhaustion}
                    out.append(
                        (_labels(a.signal), _annotations(a.signal, expected(a.description, ctx)))
                    )
            return out

        def constant(
            bad: int, total: int, slo: SLO = slo
        ) -> Callable[[int], list[tuple[str, str]]]:
            return lambda m: _sli_series(
                spec, slo, _linear(bad, m), _linear(total, m), _linear(total - bad, m)
            )

        for a in mine:
            factor = a.signal.threshold
            higher = [f for f in factors if f > factor]
            low = factor * budget
            high = min(higher[0] * budget if higher else 1.0, 1.0)
            if factor < 1:
                # Burn below 1x leaves budget to spend, so the test also pins the "exhausted
                # in <duration>" text, not only "already exhausted".
                high = min(high, budget)
            if low >= 1:
                continue  # cannot fire: every event would have to fail
            bad, total = _pick_bad(budget, low, high, factor)
            at = fire_minute(a, total)
            runs.setdefault(f"{dur(a.long)}/{dur(a.short)} {a.signal.severity}", []).append(
                _SloRun(
                    slo,
                    f"{slo.name} {bad}/{total} bad (burn {bad / total / budget:.4g}x > "
                    f"{factor:g}x) fires at {at}m",
                    constant(bad, total),
                    lambda m, bad=bad, total=total, expect=expect: expect(m, bad, total),
                    [at - 1, at] if at > 1 else [at],
                )
            )

        # Healthy: burning at half the slowest tier's factor, checked after every tier's ``for``.
        total = 1000
        bad = math.floor(factors[0] * budget / 2 * total)
        last = max(fire_minute(a, total) for a in mine)
        runs.setdefault("healthy", []).append(
            _SloRun(
                slo,
                f"{slo.name} {bad}/{total} bad never fires",
                constant(bad, total),
                lambda m: [],
                [last],
            )
        )

        # Low traffic: one failed event at minute 10 would fire every tier without the
        # ``min_events`` floor; each tier is checked when its ``for`` would have elapsed.
        if min_events >= 2:

            def one_bad_event(m: int, slo: SLO = slo) -> list[tuple[str, str]]:
                one = f"0x9 1x{max(m - 10, 0)}"
                return _sli_series(spec, slo, one, one, _flat(0, m))

            runs.setdefault(f"low traffic (< {min_events} events)", []).append(
                _SloRun(
                    slo,
                    f"{slo.name} one failed event never fires",
                    one_bad_event,
                    lambda m: [],
                    sorted({10 + ceil_minutes(a.signal.for_) for a in mine}),
                )
            )
    return runs


def _burn_cases(spec: Spec) -> list[Case]:
    """Burn-rate test groups. SLOs whose input series differ share a group (promtool
    evaluates every rule each minute of every group, so fewer, longer groups run faster)."""
    cases = []
    for scenario, runs in _burn_runs(spec).items():
        batches: list[list[_SloRun]] = []
        # The series names each batch already uses, kept alongside it: recomputing them from
        # every run of every batch for each new run made this quadratic in the SLOs.
        batch_names: list[set[str]] = []
        for run in runs:
            names = {s for s, _ in run.series(1)}
            for batch, used in zip(batches, batch_names, strict=True):
                if not names & used:
                    batch.append(run)
                    used |= names
                    break
            else:
                batches.append([run])
                batch_names.append(names)
        for batch in batches:
            minutes = sorted({m for run in batch for m in run.minutes})
            end = minutes[-1]
            cases.append(
                Case(
                    f"{n.ALERT_SLO_BURN} {scenario}: " + "; ".join(r.label for r in batch),
                    [s for run in batch for s in run.series(end)],
                    [
                        (n.ALERT_SLO_BURN, m, [a for run in batch for a in run.expect(m)])
                        for m in minutes
                    ],
                )
            )
    return cases


# ---------------------------------------------------------------------- failure-class alerts
@dataclass
class _Drive:
    """How one scenario drives a signal: input series for ``minutes`` and the value at ``t``."""

    series: Callable[[int], list[tuple[str, str]]]
    value: Callable[[int], float | None]  # None: the expression has no sample then


@dataclass
class _FcRun:
    """One failure-class scenario before batching: what it reads, feeds and checks."""

    label: str
    reads: set[str]
    series: Callable[[int], list[tuple[str, str]]]
    checks: list[tuple[str, int, list[tuple[dict[str, str], dict[str, str]]]]]

    def feeds(self) -> set[str]:
        return {s.split("{", 1)[0] for s, _ in self.series(1)}


_METRIC_IN_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def _fc_runs(spec: Spec) -> list[_FcRun]:
    runs: list[_FcRun] = []
    base = {**matcher_labels(spec), **SERIES_LABELS}
    min_events = spec.alerting.min_events
    requests = _series(c.REQUESTS_TOTAL, {**base, c.LABEL_OUTCOME: c.OUTCOME_OK})
    for signal, scenario in fc_signals_with_scenarios(spec):
        reads = set(_METRIC_IN_SELECTOR.findall(signal.expr))
        drives = _drives(signal, scenario, base, requests, min_events)
        wait = ceil_minutes(signal.for_)
        desc = fc_description(signal)
        firing = drives.get("firing")
        last = 5 + wait + 1
        what = f"{signal.alert} ({signal.failure_class}/{signal.name})"
        if firing is not None:
            first = next((t for t in range(0, 24 * 60) if _breached(signal, firing.value(t))), None)
            assert first is not None, f"scenario never breaches {signal.name}"
            at = first + wait
            last = max(last, at)
            value = firing.value(at)
            assert value is not None
            fire = (
                _labels(signal),
                _annotations(signal, expected(desc, {"value": value})),
            )
            checks: list[tuple[str, int, list[tuple[dict[str, str], dict[str, str]]]]] = []
            if wait:
                checks.append((signal.alert, at - 1, []))
            checks.append((signal.alert, at, [fire]))
            runs.append(_FcRun(f"{what} fires at {at}m", reads, firing.series, checks))
        for key, drive in drives.items():
            if key != "firing":
                runs.append(
                    _FcRun(f"{what} {key}: silent", reads, drive.series, [(signal.alert, last, [])])
                )
    return runs


def _fc_cases(spec: Spec) -> list[Case]:
    """Failure-class test groups. Scenarios share a group when neither feeds a metric the
    other's alert reads (each alert then sees only its own series), which cuts the number of
    fresh TSDBs promtool builds, and with it most of the suite's run time."""
    batches: list[list[_FcRun]] = []
    for run in _fc_runs(spec):
        feeds = run.feeds()
        for batch in batches:
            if all(
                not (feeds & (other.reads | other.feeds()) or run.reads & other.feeds())
                for other in batch
            ):
                batch.append(run)
                break
        else:
            batches.append([run])
    cases = []
    for batch in batches:
        end = max(m for run in batch for _, m, _ in run.checks)
        cases.append(
            Case(
                "; ".join(run.label for run in batch),
                [s for run in batch for s in run.series(end)],
                sorted(
                    (check for run in batch for check in run.checks),
                    key=lambda check: (check[1], check[0]),
                ),
            )
        )
    return cases


def _breached(signal: Signal, value: float | None) -> bool:
    return value is not None and signal.breached(value)


def _drives(
    signal: Signal,
    scenario: tuple[Any, ...],
    base: dict[str, str],
    requests: str,
    min_events: int,
) -> dict[str, _Drive]:
    kind = scenario[0]
    thr = signal.threshold
    out: dict[str, _Drive] = {}
    if kind in ("per_stream", "share"):
        # per_stream: bad events per admitted stream (less an allowance of events per 5 m,
        # the retry budget's floor); share: the bad streams are part of the total (arrivals).
        metric, extra = scenario[1], scenario[2]
        allowance = float(scenario[3]) if len(scenario) > 3 else 0.0
        name = _series(metric, {**base, **extra})
        total = max(1000, min_events)
        bad = math.ceil((thr * 2 if thr > 0 else 0.01) * total + allowance)
        share = kind == "share"

        def ratio(bad_k: float, total_k: float) -> float:
            if share:
                return bad_k / (bad_k + total_k)
            return max(bad_k - allowance, 0.0) / total_k

        while ratio(bad * 5, total * 5) <= thr:
            bad += 1

        def per_stream_value(t: int, bad: int = bad, total: int = total) -> float | None:
            k = min(t, 5)
            if t < 1 or total * k < min_events:
                return None
            return ratio(bad * k, total * k)

        out["firing"] = _Drive(
            lambda m, bad=bad, total=total, name=name: [
                (requests, _linear(total, m)),
                (name, _linear(bad, m)),
            ],
            per_stream_value,
        )
        out["healthy"] = _Drive(
            lambda m, total=total, name=name: [
                (requests, _linear(total, m)),
                (name, _flat(0, m)),
            ],
            lambda t: 0.0,
        )
        if min_events >= 2 and thr < 1:
            # Every stream fails, but fewer than min_events streams finish per 5 m.
            e = min_events - 1

            def quiet(m: int, e: int = e, name: str = name) -> list[tuple[str, str]]:
                values = _explicit([i * e // 5 for i in range(m + 1)])
                if share:  # the bad streams are all the arrivals there are
                    return [(requests, _flat(0, m)), (name, values)]
                return [(requests, values), (name, values)]

            out[f"low traffic ({min_events - 1} streams per 5m, all failing)"] = _Drive(
                quiet, lambda t: None
            )
    elif kind == "rate":
        metric, extra = scenario[1], scenario[2]
        name = _series(metric, {**base, **extra})
        per_min = max(1, math.ceil(thr * 60 * 2))
        while per_min * 5 / 300 <= thr:
            per_min += 1
        out["firing"] = _Drive(
            lambda m, name=name, per_min=per_min: [(name, _linear(per_min, m))],
            lambda t, per_min=per_min: None if t < 1 else (per_min * min(t, 5)) / 300.0,
        )
        out["healthy"] = _Drive(lambda m, name=name: [(name, _flat(0, m))], lambda t: 0.0)
    elif kind == "p99":
        hist = scenario[1]
        lo = thr if thr > 0 else 1.0
        hi = lo * 2

        def buckets(bounds: dict[str, int], m: int, hist: str = hist) -> list[tuple[str, str]]:
            return [
                (_series(c.bucket(hist), {**base, "le": le}), _linear(per_min, m))
                for le, per_min in bounds.items()
            ] + [(_series(c.count(hist), base), _linear(bounds["+Inf"], m))]

        # Observations per minute: enough for the low-traffic guard within the 5 m window.
        n = max(10, math.ceil(min_events / 5))

        def p99_value(t: int, lo: float = lo, hi: float = hi, n: int = n) -> float | None:
            if t < 1 or n * min(t, 5) < min_events:
                return None
            # Every observation sits in (lo, hi]: linear interpolation puts the p99 at 99 %
            # of the way from lo to hi, whatever the count.
            return lo + (hi - lo) * 0.99

        out["firing"] = _Drive(
            lambda m, lo=lo, hi=hi, n=n: buckets(
                {c.le_label(lo): 0, c.le_label(hi): n, "+Inf": n}, m
            ),
            p99_value,
        )
        if min_events >= 2:
            # Every observation slow, but fewer than min_events of them per 5 m.
            e = min_events - 1

            def few_slow(
                m: int, e: int = e, lo: float = lo, hi: float = hi
            ) -> list[tuple[str, str]]:
                values = _explicit([i * e // 5 for i in range(m + 1)])
                return [
                    (_series(c.bucket(hist), {**base, "le": c.le_label(lo)}), _flat(0, m)),
                    (_series(c.bucket(hist), {**base, "le": c.le_label(hi)}), values),
                    (_series(c.bucket(hist), {**base, "le": "+Inf"}), values),
                    (_series(c.count(hist), base), values),
                ]

            out[f"low traffic ({e} observations per 5m, all slow)"] = _Drive(
                few_slow, lambda t: None
            )
        if thr > 0:
            out["healthy (every observation at half the threshold)"] = _Drive(
                lambda m, lo=lo, hi=hi: buckets(
                    {c.le_label(lo / 2): n, c.le_label(lo): n, c.le_label(hi): n, "+Inf": n},
                    m,
                ),
                lambda t: None,
            )
    elif kind == "cascade":
        # Two workers, each exporting its in-flight count and its cap: the signal divides
        # the sums, so each worker at ``busy`` of ``cap`` reads busy/cap, not 2 x busy/cap.
        cap = scenario[1]
        busy = math.floor(thr * cap) + 1
        calm = math.floor(thr * cap / 2)
        workers = ("worker-1", "worker-2")
        cap_base = {k: v for k, v in base.items() if k not in SERIES_LABELS}

        def cascade(m: int, in_flight: int, phases: tuple[str, ...]) -> list[tuple[str, str]]:
            out = []
            for w in workers:
                out.append((_series(c.IN_FLIGHT, {**base, "instance": w}), _flat(in_flight, m)))
                out.append(
                    (_series(c.INGRESS_MAX_CONCURRENT, {**cap_base, "instance": w}), _flat(cap, m))
                )
            return out + [
                (_series(c.TIMEOUTS_TOTAL, {**base, c.LABEL_PHASE: p}), _linear(5, m))
                for p in phases
            ]

        n = float(len(workers))
        two = (c.TIMEOUT_FIRST_TOKEN, c.TIMEOUT_IDLE)
        out["firing"] = _Drive(
            lambda m, busy=busy: cascade(m, busy, two),
            lambda t, busy=busy, cap=cap: None if t < 1 else (busy * n) / (cap * n),
        )
        out[f"in flight {busy}/{cap} per worker but timeouts in one phase only"] = _Drive(
            lambda m, busy=busy: cascade(m, busy, (c.TIMEOUT_IDLE,)), lambda t: None
        )
        out[f"timeouts in two phases but only {calm}/{cap} in flight per worker"] = _Drive(
            lambda m, calm=calm: cascade(m, calm, two), lambda t: None
        )
    elif kind == "resume":
        failed_name = _series(c.RESUME_FAILURE_TOTAL, base)
        ok_name = _series(c.RESUME_SUCCESS_TOTAL, base)
        failed = min(100, math.floor(min(thr * 2, 1.0) * 100) + 1)
        if failed / 100 > thr:
            ok = 100 - failed

            def resume_value(t: int, failed: int = failed, ok: int = ok) -> float | None:
                if t < 1:
                    return None
                k = min(t, 5)
                return float(failed * k) / (float(failed * k) + float(ok * k))

            out["firing"] = _Drive(
                lambda m, failed=failed, ok=ok: [
                    (failed_name, _linear(failed, m)),
                    (ok_name, _linear(ok, m)),
                ],
                resume_value,
            )
        out["healthy"] = _Drive(
            lambda m: [(failed_name, _flat(0, m)), (ok_name, _linear(100, m))], lambda t: 0.0
        )
    elif kind == "silence":
        steady = int(scenario[1])
        # Twice the steady floor, and well above the threshold while it flows.
        per_min = max(1, math.ceil(steady / 60 * 2), math.ceil(thr * 60 * 2) + 1)
        stop = 70

        def stops(m: int, per_min: int, stop: int = stop) -> list[tuple[str, str]]:
            return [(requests, _explicit([min(i, stop) * per_min for i in range(m + 1)]))]

        def silence_value(t: int, per_min: int = per_min, stop: int = stop) -> float | None:
            if t < 1:
                return None
            before = (min(t - 5, stop) - max(t - 65, 0)) * per_min
            if before < steady:
                return None
            return max(0, min(t, stop) - max(t - 5, 0)) * per_min / 300.0

        out["firing"] = _Drive(lambda m, per_min=per_min: stops(m, per_min), silence_value)
        quiet = max(1, steady // 60 // 2)
        if quiet * 60 < steady:
            out[f"quiet hour ({quiet} streams per minute) then silence"] = _Drive(
                lambda m, quiet=quiet: stops(m, quiet), lambda t: None
            )
        out["healthy"] = _Drive(
            lambda m, per_min=per_min: [(requests, _linear(per_min, m))], lambda t: None
        )
    elif kind == "hung":
        in_flight = _series(c.IN_FLIGHT, base)
        out["firing"] = _Drive(
            lambda m: [(in_flight, _flat(8, m)), (requests, _flat(100, m))],
            # No increase to rate from the first minute on, and "or vector(0)" before that.
            lambda t: 0.0,
        )
        out["healthy (streams in flight and finishing)"] = _Drive(
            lambda m: [(in_flight, _flat(8, m)), (requests, _linear(100, m))], lambda t: None
        )
        out["idle (nothing in flight, nothing finishing)"] = _Drive(
            lambda m: [(in_flight, _flat(0, m)), (requests, _flat(100, m))], lambda t: None
        )
    elif kind == "absent":
        out["firing"] = _Drive(lambda m: [(_series(c.IN_FLIGHT, base), _flat(0, m))], lambda t: 1.0)
        out["healthy"] = _Drive(lambda m: [(requests, _linear(10, m))], lambda t: None)
    else:  # pragma: no cover - a new scenario kind without a driver is a programming error
        raise ValueError(f"no promtool scenario for {kind!r}")
    return out


def rule_tests(
    spec: Spec, rules_file: str, groups: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The promtool test file (as data) for the rules in ``rules_file`` (a path relative to
    the test file). ``groups`` are the spec's :func:`rule_groups` when the caller has them
    already (they are only read), else they are built."""
    cases = _burn_cases(spec) + _fc_cases(spec)
    return {
        "rule_files": [rules_file],
        "evaluation_interval": f"{STEP_MINUTES}m",
        # Without an order promtool evaluates groups in random order, and an alert evaluated
        # before its SLI group would see the previous minute: SLIs first, as in the file.
        "group_eval_order": [g["name"] for g in (rule_groups(spec) if groups is None else groups)],
        "tests": [case.to_yaml() for case in cases],
    }
