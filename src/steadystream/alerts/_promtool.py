"""Generated promtool unit tests that guard every alert's logic: it fires just above its
threshold at the expected minute with the expected labels and annotations, and not just below
it; it respects its low-traffic guard (silent one event under it, firing the minute it is met)
and its ``for``; it resolves once the burn stops; a burn tier fires on neither window alone.

Burn and outage expectations come from :class:`_Sim`, which evaluates the SLI recording rules
on the test's counters; failure-class expectations from each scenario's value function.

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
from ..catalog.alerting import (
    FIVE_MINUTES,
    SAMPLES_PER_5M,
    burn_event_floor,
    error_budget,
    fc_signals_with_scenarios,
    slo_outage_signals,
)
from ..catalog.memo import per_render
from ..catalog.promql import dur, matcher_labels, num, quote
from ..catalog.signal import Signal, event_floor
from ..spec import SLO, Spec
from ._rules import (
    BurnAlert,
    burn_alerts,
    expected,
    fc_description,
    raw_window,
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
                        for labels, annotations in (
                            alerts
                            if len(alerts) < 2
                            else sorted(alerts, key=lambda a: sorted(a[0].items()))
                        )
                    ],
                }
                for alert, minute, alerts in self.checks
            ],
        }


def _labels(signal: Signal) -> dict[str, str]:
    return {
        n.LABEL_SEVERITY: signal.severity,
        **dict(signal.labels),
        n.LABEL_FAILURE_CLASS: signal.failure_class,
    }


def _annotations(signal: Signal, description: str) -> dict[str, str]:
    return {
        "summary": signal.summary,
        "description": description,
        "runbook_url": signal.runbook,
        "dashboard_url": signal.dashboard,
        **dict(signal.annotations),
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


def _encode(values: list[int]) -> str:
    """Cumulative per-minute values in promtool's expanding notation (``a+bxn`` segments)."""
    out = []
    i = 0
    while i < len(values):
        j = i + 1
        if j < len(values):
            step = values[j] - values[i]
            while j + 1 < len(values) and values[j + 1] - values[j] == step:
                j += 1
            sign = "+" if step >= 0 else "-"
            out.append(f"{values[i]}{sign}{abs(step)}x{j - i}")
            i = j + 1
        else:
            out.append(str(values[i]))
            i = j
    return " ".join(out)


# ------------------------------------------------------------------ burn-test traffic shapes
@dataclass(frozen=True)
class _Shape:
    """A burn scenario's traffic: (bad, total) events added in each minute from minute 1 on.
    Shapes are values, so SLOs given the same traffic share its simulated counters."""

    def __call__(self, m: int) -> tuple[int, int]:
        raise NotImplementedError


@dataclass(frozen=True)
class _Constant(_Shape):
    bad: int
    total: int

    def __call__(self, m: int) -> tuple[int, int]:
        return self.bad, self.total


@dataclass(frozen=True)
class _Until(_Shape):
    """``bad`` of ``total`` per minute until minute ``stop``, then ``then`` bad."""

    stop: int
    bad: int
    total: int
    then: int = 0

    def __call__(self, m: int) -> tuple[int, int]:
        return (self.bad if m <= self.stop else self.then), self.total


@dataclass(frozen=True)
class _After(_Shape):
    """``before`` bad until minute ``start``, then ``bad`` of ``total`` per minute."""

    start: int
    bad: int
    total: int
    before: int = 0

    def __call__(self, m: int) -> tuple[int, int]:
        return (self.bad if m > self.start else self.before), self.total


@dataclass(frozen=True)
class _Edge(_Shape):
    """Every event bad for ``heavy`` minutes, none for ``quiet``, then ``bad`` of ``total``
    for ``tail`` minutes: a window of ``quiet + tail`` minutes sees only the tail burning,
    a longer one the heavy start too."""

    heavy: int
    quiet: int
    tail: int
    bad: int
    total: int

    def __call__(self, m: int) -> tuple[int, int]:
        if m <= self.heavy:
            return self.total, self.total
        return (self.bad if m > self.heavy + self.quiet else 0), self.total


class _Traffic:
    """A shape's counters, sampled every minute from 0 at minute 0, with prefix sums of the
    recorded 5 m increases (integers, so the float sums Prometheus makes are exact whatever
    their order). Minutes are played only when read: most scenarios are decided within
    minutes of a horizon of days."""

    __slots__ = ("bad", "bad5", "ratios", "shape", "total", "total5")

    def __init__(self, shape: _Shape) -> None:
        self.shape = shape
        self.bad = [0]
        self.total = [0]
        self.bad5 = [0]
        self.total5 = [0]
        # (window, minute) -> the window's error ratio: every SLO, tier and check on this
        # shape reads the same few, whatever its error budget.
        self.ratios: dict[tuple[float, int], float | None] = {}

    def grow(self, t: int) -> None:
        bad, total, bad5, total5, shape = self.bad, self.total, self.bad5, self.total5, self.shape
        for m in range(len(bad), t + 1):
            b, n = shape(m)
            bad.append(bad[-1] + b)
            total.append(total[-1] + n)
            back = max(0, m - 5)
            bad5.append(bad5[-1] + bad[m] - bad[back])
            total5.append(total5[-1] + total[m] - total[back])


@dataclass(frozen=True)
class _TierKey:
    """What a burn tier's firing depends on, apart from the SLO's error budget."""

    threshold: float
    long: float
    short: float
    for_: float | None
    floor: int  # events the long window must hold


@dataclass(frozen=True)
class _OutageKey:
    threshold: float
    for_: float | None
    floor: int  # events the last 5 m must hold


@dataclass(frozen=True)
class _Profile:
    """What an SLO's burn and outage alerts depend on: two SLOs with the same profile fire at
    the same minutes on the same traffic (their labels and text differ)."""

    budget: float
    tiers: tuple[_TierKey, ...]
    outage: _OutageKey | None


@dataclass(frozen=True)
class _SloAlerts:
    """An SLO's burn tiers (in spec order, aligned with ``profile.tiers``) and outage signal."""

    tiers: list[BurnAlert]
    outage: Signal | None
    profile: _Profile
    # The expected labels of each tier's alert and of the outage alert, built once: every
    # check of the SLO shares them (and the YAML writer lays a shared mapping out once).
    tier_labels: list[dict[str, str]]
    outage_labels: dict[str, str] | None


@per_render(copy=dict)
def _slo_alerts(spec: Spec) -> dict[str, _SloAlerts]:
    """Every SLO's :class:`_SloAlerts`, by SLO name."""
    tiers: dict[str, list[BurnAlert]] = {slo.name: [] for slo in spec.slos}
    for a in burn_alerts(spec):
        tiers[a.slo.name].append(a)
    outage = slo_outage_signals(spec)
    out = {}
    for slo in spec.slos:
        signal = outage.get(slo.name)
        keys = tuple(
            _TierKey(
                a.signal.threshold,
                a.long,
                a.short,
                a.signal.for_,
                burn_event_floor(spec, slo, a.signal.threshold),
            )
            for a in tiers[slo.name]
        )
        outage_key = (
            None
            if signal is None
            else _OutageKey(signal.threshold, signal.for_, event_floor(spec, signal.threshold))
        )
        out[slo.name] = _SloAlerts(
            tiers[slo.name],
            signal,
            _Profile(error_budget(slo), keys, outage_key),
            [_labels(a.signal) for a in tiers[slo.name]],
            None if signal is None else _labels(signal),
        )
    return out


#: The values a firing burn tier's annotation reads: (tier index, burn, budget remaining,
#: time to exhaustion).
_Fired = tuple[int, float, float | None, float | None]


class _Sim:
    """The SLI recording rules and the burn and outage alerts of SLOs with one error budget,
    evaluated in Python on the counters of one traffic shape, with the same float operations
    in the same order as Prometheus, so the generated tests predict firing minutes and
    annotation text exactly.

    Ranges are closed (as in Prometheus 2), so ``increase`` over a window is the exact
    growth: the window's first sample exists, or it is the counter's 0 at minute 0, below
    which Prometheus does not extrapolate.
    """

    def __init__(self, spec: Spec, budget: float, traffic: _Traffic) -> None:
        self.spec, self.budget, self.traffic = spec, budget, traffic
        self._fired: dict[tuple[tuple[_TierKey, ...], int], list[_Fired]] = {}
        self._tier: dict[tuple[_TierKey, int], bool] = {}

    def _inc(self, series: list[int], t: int, window_min: int) -> float | None:
        if t < 1:
            return None  # one sample: no increase yet
        return float(series[t] - series[max(0, t - window_min)])

    def _counts(self, window: float, t: int) -> tuple[float, float] | None:
        """(bad, total) as the window's recorded ratio divides them (sums of 5 m increases
        for the long windows), or None without a sample."""
        tr = self.traffic
        if t >= len(tr.bad):
            tr.grow(t)
        w = int(window // 60)
        if raw_window(self.spec, window) or window == FIVE_MINUTES:
            bad, total = self._inc(tr.bad, t, w), self._inc(tr.total, t, w)
            if bad is None or total is None:
                return None
            return bad, total
        return self._sums(window, t)

    def _sums(self, window: float, t: int) -> tuple[float, float] | None:
        """(bad, total) summed over the window's 5 m increases, or None without a sample."""
        tr = self.traffic
        if t >= len(tr.bad):
            tr.grow(t)
        if t < 1:
            return None
        first = max(1, t - int(window // 60))
        return float(tr.bad5[t] - tr.bad5[first - 1]), float(tr.total5[t] - tr.total5[first - 1])

    def events(self, window: float, t: int) -> float | None:
        """A low-traffic guard's event count (catalog.alerting.window_events): the 5 m
        increase, or the sum of the 5 m increases over a longer window over five."""
        if window == FIVE_MINUTES:
            counts = self._counts(window, t)
            return None if counts is None else counts[1]
        sums = self._sums(window, t)
        return None if sums is None else sums[1] / SAMPLES_PER_5M

    def ratio(self, window: float, t: int) -> float | None:
        key = (window, t)
        ratios = self.traffic.ratios
        if key in ratios:
            return ratios[key]
        counts = self._counts(window, t)
        ratio = None if counts is None or counts[1] <= 0 else counts[0] / counts[1]
        ratios[key] = ratio
        return ratio

    def burn(self, window: float, t: int) -> float | None:
        ratio = self.ratio(window, t)
        return None if ratio is None else ratio / self.budget

    def _tier_true(self, k: _TierKey, t: int) -> bool:
        hit = self._tier.get((k, t))
        if hit is not None:
            return hit
        long_, short = self.burn(k.long, t), self.burn(k.short, t)
        true = (
            long_ is not None and short is not None and short > k.threshold and long_ > k.threshold
        )
        if true and k.floor > 0:  # the guard's count only when both burns are over
            events = self.events(k.long, t)
            true = events is not None and events >= k.floor
        self._tier[(k, t)] = true
        return true

    def _outage_true(self, k: _OutageKey, t: int) -> bool:
        ratio = self.ratio(FIVE_MINUTES, t)
        events = self.events(FIVE_MINUTES, t)
        return (
            ratio is not None
            and (k.floor <= 0 or (events is not None and events >= k.floor))
            and ratio > k.threshold
        )

    @staticmethod
    def _held(true: Callable[[int], bool], t: int, for_: float | None) -> bool:
        if not for_:
            return true(t)
        return all(true(m) for m in range(max(0, t - ceil_minutes(for_)), t + 1))

    def tier_fires(self, k: _TierKey, t: int) -> bool:
        return self._held(lambda m: self._tier_true(k, m), t, k.for_)

    def outage_fires(self, k: _OutageKey, t: int) -> bool:
        return self._held(lambda m: self._outage_true(k, m), t, k.for_)

    def fired(self, tiers: tuple[_TierKey, ...], t: int) -> list[_Fired]:
        """The tiers firing at minute ``t``, with what their annotations read."""
        hit = self._fired.get((tiers, t))
        if hit is not None:
            return hit
        out = []
        for i, k in enumerate(tiers):
            if not self.tier_fires(k, t):
                continue
            burn = self.burn(k.long, t)
            assert burn is not None
            period = self.ratio(self.spec.period, t)
            remaining = None if period is None else 1 - period / self.budget
            exhaustion = None if remaining is None else remaining * self.spec.period / burn
            out.append((i, burn, remaining, exhaustion))
        self._fired[(tiers, t)] = out
        return out


class _Sims:
    """The simulations of one render of the tests: one :class:`_Traffic` per shape and one
    :class:`_Sim` per (error budget, shape), shared by every SLO and scenario that asks."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._traffic: dict[_Shape, _Traffic] = {}
        self._sims: dict[tuple[float, _Shape], _Sim] = {}
        self._encoded: dict[tuple[_Shape, int], tuple[str, str, str]] = {}
        # Per SLO: its input series' names, each with the counter it carries (0 bad, 1 total,
        # 2 good); the names do not depend on the traffic.
        self._names: dict[str, list[tuple[str, int]]] = {}

    def __call__(self, budget: float, shape: _Shape) -> _Sim:
        sim = self._sims.get((budget, shape))
        if sim is None:
            traffic = self._traffic.get(shape)
            if traffic is None:
                traffic = self._traffic[shape] = _Traffic(shape)
            sim = self._sims[(budget, shape)] = _Sim(self.spec, budget, traffic)
        return sim

    def series(self, slo: SLO, shape: _Shape, minutes: int) -> list[tuple[str, str]]:
        """The input series that feed ``slo`` the shape's counters up to ``minutes``."""
        encoded = self._encoded.get((shape, minutes))
        if encoded is None:
            traffic = self._traffic.get(shape)
            if traffic is None:
                traffic = self._traffic[shape] = _Traffic(shape)
            traffic.grow(minutes)
            bad, total = traffic.bad[: minutes + 1], traffic.total[: minutes + 1]
            good = [t - b for b, t in zip(bad, total, strict=True)]
            encoded = self._encoded[(shape, minutes)] = (
                _encode(bad),
                _encode(total),
                _encode(good),
            )
        names = self._names.get(slo.name)
        if names is None:
            slots = {"0": 0, "1": 1, "2": 2}
            names = self._names[slo.name] = [
                (name, slots[slot]) for name, slot in _sli_series(self.spec, slo, "0", "1", "2")
            ]
        return [(name, encoded[slot]) for name, slot in names]


def _burn_alerts_at(
    sims: _Sims, spec: Spec, alerts: _SloAlerts, shape: _Shape, t: int
) -> list[tuple[dict[str, str], dict[str, str]]]:
    out = []
    for i, burn, remaining, exhaustion in sims(alerts.profile.budget, shape).fired(
        alerts.profile.tiers, t
    ):
        a = alerts.tiers[i]
        ctx = {"value": burn, "remaining": remaining, "exhaustion": exhaustion}
        out.append((alerts.tier_labels[i], _annotations(a.signal, expected(a.description, ctx))))
    return out


def _outage_alerts_at(
    sims: _Sims, alerts: _SloAlerts, shape: _Shape, t: int
) -> list[tuple[dict[str, str], dict[str, str]]]:
    signal, key, labels = alerts.outage, alerts.profile.outage, alerts.outage_labels
    if signal is None or key is None or labels is None:
        return []
    sim = sims(alerts.profile.budget, shape)
    if not sim.outage_fires(key, t):
        return []
    value = sim.ratio(FIVE_MINUTES, t)
    return [(labels, _annotations(signal, expected(fc_description(signal), {"value": value})))]


@dataclass(frozen=True)
class _Plan:
    """One scenario of an alert, for any SLO with the same parameters: its traffic, the
    minutes checked, and why (``label`` follows the SLO's name)."""

    scenario: str
    label: str
    shape: _Shape
    minutes: tuple[int, ...]


@dataclass
class _SloRun:
    """One SLO's part of a burn test group: its traffic, the minutes checked, and why."""

    slo: SLO
    label: str
    shape: _Shape
    minutes: tuple[int, ...]


def _first(pred: Callable[[int], bool], start: int, stop: int) -> int | None:
    return next((t for t in range(start, stop + 1) if pred(t)), None)


def _fraction(share: float, near: float, above: Callable[[float], bool]) -> tuple[int, int] | None:
    """(bad, total) per minute whose ratio is just past ``share``: on the side of ``near``
    (a factor such as 1.1 or 0.9) and within it. ``above(ratio)`` is the alert's own
    comparison, in the rule's float operations, so a ratio that rounds onto the threshold is
    never taken for one past it. None when no such pair exists."""
    for total in (1000, 10_000, 100_000):
        guess = math.floor(share * total)
        for bad in range(max(0, guess - 2), min(total, guess + 3) + 1):
            ratio = bad / total
            if near > 1 and above(ratio) and ratio <= share * near:
                return bad, total
        for bad in range(min(total, guess + 2), max(-1, guess - 3), -1):
            ratio = bad / total
            if near < 1 and not above(ratio) and ratio >= share * near:
                return bad, total
    return None


#: Longest burn scenario, in minutes (bounds the search for a scenario's minutes).
_HORIZON = 3 * 24 * 60


def _tier_plans(spec: Spec, sims: _Sims, budget: float, k: _TierKey) -> list[_Plan]:
    """The logic checks of one tier: fires just above its factor and not just below it, not
    when only its long or only its short window burns, resolves once the burn stops, fires
    exactly when its low-traffic floor is reached, and reads no more than its long window."""
    f = k.threshold
    share = f * budget
    tier = f"{dur(k.long)}/{dur(k.short)}"
    plans: list[_Plan] = []
    if share >= 1:
        return plans  # cannot fire: every event would have to be bad
    sim = lambda shape: sims(budget, shape)  # noqa: E731

    def burns(ratio: float) -> bool:
        return ratio / budget > f

    def fire_minute(shape: _Shape) -> int | None:
        s = sim(shape)
        return _first(lambda t: s.tier_fires(k, t), 1, _HORIZON)

    def plan(scenario: str, label: str, shape: _Shape, minutes: list[int]) -> None:
        plans.append(_Plan(f"{tier} {scenario}", label, shape, tuple(minutes)))

    above = _fraction(share, 1.1, burns)
    below = _fraction(share, 0.9, burns)
    if above is not None:
        at = fire_minute(_Constant(*above))
        if at is not None:
            plan(
                "just above",
                f"{above[0]}/{above[1]} bad fires {tier} at {at}m",
                _Constant(*above),
                sorted({max(at - 1, 1), at}),
            )
            if below is not None:
                plan(
                    "just below",
                    f"{below[0]}/{below[1]} bad: {tier} silent at {at}m",
                    _Constant(*below),
                    [at],
                )
    short_min = int(k.short // 60)
    long_min = int(k.long // 60)
    # Only the long window burns: every event bad until the tier fires, then a share just
    # under the factor; one short window later the short window reads just under it while
    # the long window still burns, and the tier has resolved.
    scale = below[1] if below is not None else 1000
    tail = below[0] if below is not None else 0
    at = fire_minute(_Constant(scale, scale))
    if at is not None:
        stop = at
        while stop <= _HORIZON // 4:
            end = stop + 2 * short_min + 5
            s = sim(_Until(stop, scale, scale, tail))

            def only_long(t: int, s: _Sim = s) -> bool:
                long_, short = s.burn(k.long, t), s.burn(k.short, t)
                return long_ is not None and long_ > f and (short is None or short <= f)

            quiet = _first(only_long, stop + 1, end)
            if quiet is not None:
                plan(
                    "only the long window",
                    f"every event bad until {stop}m, then {tail}/{scale}: {tier} "
                    f"fires, then resolves at {quiet}m with only the long window burning",
                    _Until(stop, scale, scale, tail),
                    [stop, quiet],
                )
                break
            stop += max(1, short_min // 4)
    # Only the short window burns: a healthy history just long enough that one short window
    # just above the factor leaves the long window just under it (between 0.8 and 0.9 of it).
    if above is not None:
        start = 1
        step = max(1, short_min // 24)
        while start <= _HORIZON // 4:
            end = start + short_min
            s = sim(_After(start, *above))
            long_, short = s.burn(k.long, end), s.burn(k.short, end)
            if short is not None and short > f and long_ is not None and long_ <= 0.9 * f:
                plan(
                    "only the short window",
                    f"healthy {start}m then {above[0]}/{above[1]} bad: {tier} silent at {end}m",
                    _After(start, *above),
                    [end],
                )
                break
            start += step
    # The long window's edge: a heavy burn just outside it, then a short window just above
    # the factor. A rule that read a longer window would see the heavy burn and fire. Every
    # window read from the raw counters (up to 6 h) gets one: with constant traffic a longer
    # window reads the same ratio and, from the 5 m totals, the same guard count.
    if above is not None and raw_window(spec, k.long):
        shape = _Edge(long_min, long_min - short_min, short_min, *above)
        end = 2 * long_min
        if not sim(shape).tier_fires(k, end):
            plan(
                "long window edge",
                f"all bad for {long_min}m, then healthy, then {above[0]}/{above[1]}"
                f" bad: {tier} silent at {end}m",
                shape,
                [end],
            )
    # The low-traffic floor: every event bad, arriving slowly; silent the minute before the
    # long window holds the floor's events, firing the minute it does.
    floor = k.floor
    if floor >= 2:
        # Slow enough that one minute moves the count by at most 2 % of the floor, fast
        # enough that the long window can hold the floor at all (a 1h window, 70 events).
        per_min = max(1, floor // 50, math.ceil(floor / max(1, long_min - 10)))
        fires = fire_minute(_Constant(per_min, per_min))
        if fires is not None and fires > 1:
            plan(
                "low-traffic floor",
                f"{per_min}/min all bad: {tier} silent under {floor} events, fires at {fires}m",
                _Constant(per_min, per_min),
                [fires - 1, fires],
            )
    return plans


def _outage_plans(sims: _Sims, k: _OutageKey) -> list[_Plan]:
    """The fast path's checks: a hard outage after a healthy hour fires at its third minute;
    fires just above its share, not just below; resolves once 5 m are clean again; respects
    its low-traffic floor. The outage reads no error budget."""
    plans: list[_Plan] = []
    thr = k.threshold

    def fires(shape: _Shape, start: int, stop: int) -> int | None:
        s = sims(1.0, shape)
        return _first(lambda t: s.outage_fires(k, t), start, stop)

    total = 1000
    at = fires(_After(60, total, total), 61, 90)
    if at is not None:
        plans.append(
            _Plan(
                "outage after a healthy hour",
                f"every event bad from 60m: outage fires at {at}m",
                _After(60, total, total),
                (at - 1, at),
            )
        )
        stop = at + 5
        # still firing right after the stop
        back = fires(_Until(stop, total, total), stop + 1, stop + 15)
        s = sims(1.0, _Until(stop, total, total))
        clear = _first(lambda t: not s.outage_fires(k, t), stop + 1, stop + 15)
        if clear is not None and back is not None:
            plans.append(
                _Plan(
                    "outage resolves",
                    f"every event bad until {stop}m: outage resolves at {clear}m",
                    _Until(stop, total, total),
                    (stop, clear),
                )
            )
    for near, word in ((1.1, "above"), (0.9, "below")):
        pick = _fraction(thr, near, lambda ratio: ratio > thr)
        if pick is None:
            continue
        first = fires(_Constant(*pick), 1, 30)
        check = first if first is not None else 10
        plans.append(
            _Plan(
                f"outage just {word}",
                f"{pick[0]}/{pick[1]} bad: outage "
                + (f"fires at {first}m" if first is not None else f"silent at {check}m"),
                _Constant(*pick),
                tuple(sorted({max(check - 1, 1), check})),
            )
        )
    floor = k.floor
    if floor >= 2:
        per_min = math.ceil(floor / SAMPLES_PER_5M)
        first = fires(_Constant(per_min, per_min), 1, 30)
        if first is not None and first > 1:
            plans.append(
                _Plan(
                    "outage low-traffic floor",
                    f"{per_min}/min all bad: outage silent under {floor} events in 5m, "
                    f"fires at {first}m",
                    _Constant(per_min, per_min),
                    (first - 1, first),
                )
            )
    return plans


def _burn_runs(spec: Spec, sims: _Sims) -> dict[str, list[_SloRun]]:
    """Per scenario, each SLO's run. Plans are searched once per distinct tier (or outage)
    parameters and given to every SLO that has them."""
    tier_plans: dict[tuple[float, _TierKey], list[_Plan]] = {}
    outage_plans: dict[_OutageKey, list[_Plan]] = {}
    runs: dict[str, list[_SloRun]] = {}
    for slo in tested_slos(spec):
        alerts = _slo_alerts(spec)[slo.name]
        profile = alerts.profile
        plans: list[_Plan] = []
        for k in profile.tiers:
            key = (profile.budget, k)
            if key not in tier_plans:
                tier_plans[key] = _tier_plans(spec, sims, profile.budget, k)
            plans += tier_plans[key]
        if profile.outage is not None:
            if profile.outage not in outage_plans:
                outage_plans[profile.outage] = _outage_plans(sims, profile.outage)
            plans += outage_plans[profile.outage]
        if profile.tiers:
            # Healthy: burning at half the slowest tier's factor never fires.
            factors = sorted(k.threshold for k in profile.tiers)
            total = 1000
            bad = math.floor(factors[0] * profile.budget / 2 * total)
            plans.append(
                _Plan("healthy", f"{bad}/{total} bad never fires", _Constant(bad, total), (90,))
            )
        scenarios: dict[str, _SloRun] = {}
        for p in plans:
            scenarios[p.scenario] = _SloRun(slo, f"{slo.name} {p.label}", p.shape, p.minutes)
        for key, run in scenarios.items():
            runs.setdefault(key, []).append(run)
    return runs


def tested_slos(spec: Spec) -> list[SLO]:
    """The SLOs whose burn and outage alerts the generated tests play: not those with a
    generic PromQL indicator, for which no input series can be invented (its queries may read
    any metric in any shape)."""
    return [slo for slo in spec.slos if not slo.indicator.generic]


def _burn_cases(spec: Spec) -> list[Case]:
    """Burn-rate and outage test groups. SLOs whose input series differ share a group
    (promtool evaluates every rule each minute of every group, so fewer, longer groups run
    faster). Each checked minute asserts every burn and outage alert of the group's SLOs."""
    outage = bool(slo_outage_signals(spec))
    sims = _Sims(spec)
    slo_alerts = _slo_alerts(spec)
    cases = []
    # The series names of each SLO (they do not depend on the traffic).
    names = {
        slo.name: {x for x, _ in _sli_series(spec, slo, "", "", "")} for slo in tested_slos(spec)
    }
    for scenario, runs in _burn_runs(spec, sims).items():
        batches: list[list[_SloRun]] = []
        # The series names each batch already uses, kept alongside it: recomputing them from
        # every run of every batch for each new run made this quadratic in the SLOs.
        batch_names: list[set[str]] = []
        for run in runs:
            mine = names[run.slo.name]
            for batch, used in zip(batches, batch_names, strict=True):
                if not mine & used:
                    batch.append(run)
                    used |= mine
                    break
            else:
                batches.append([run])
                batch_names.append(set(mine))
        for batch in batches:
            minutes = sorted({m for run in batch for m in run.minutes})
            end = minutes[-1]
            checks = []
            # An SLO may name its own burn alerts (alerts.name): one check per alert name.
            alert_names = sorted({run.slo.alerts.name or n.ALERT_SLO_BURN for run in batch})
            for m in minutes:
                for alert_name in alert_names:
                    checks.append(
                        (
                            alert_name,
                            m,
                            [
                                a
                                for run in batch
                                if (run.slo.alerts.name or n.ALERT_SLO_BURN) == alert_name
                                for a in _burn_alerts_at(
                                    sims, spec, slo_alerts[run.slo.name], run.shape, m
                                )
                            ],
                        )
                    )
                if outage:
                    checks.append(
                        (
                            n.ALERT_SLO_OUTAGE,
                            m,
                            [
                                a
                                for run in batch
                                for a in _outage_alerts_at(
                                    sims, slo_alerts[run.slo.name], run.shape, m
                                )
                            ],
                        )
                    )
            cases.append(
                Case(
                    f"{scenario}: " + "; ".join(r.label for r in batch),
                    [x for run in batch for x in sims.series(run.slo, run.shape, end)],
                    checks,
                )
            )
    return cases


# ---------------------------------------------------------------------- failure-class alerts
@dataclass
class _Drive:
    """How one scenario drives a signal: input series for ``minutes`` and the value at ``t``."""

    series: Callable[[int], list[tuple[str, str]]]
    value: Callable[[int], float | None]  # None: the expression has no sample then
    # A silent scenario's own minute to check (after its shape has played out), else the
    # minute the firing scenario fires.
    at: int | None = None


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


def _expand(values: str) -> list[float]:
    """promtool's expanding notation (``a+bxn``, ``axn``, plain numbers) as a list."""
    out: list[float] = []
    for part in values.split():
        m = re.fullmatch(r"(-?[\d.]+)(?:([+-])([\d.]+))?x(\d+)", part)
        if m is None:
            out.append(float(part))
            continue
        start, sign, step, times = m.groups()
        delta = float(step or 0) * (-1 if sign == "-" else 1)
        out.extend(float(start) + delta * i for i in range(int(times) + 1))
    return out


def _held(series: list[tuple[str, str]], stop: int) -> Callable[[int], list[tuple[str, str]]]:
    """``series`` as they are until minute ``stop``, then flat: nothing more happens."""

    def held(m: int) -> list[tuple[str, str]]:
        out = []
        for name, values in series:
            v = _expand(values)[: stop + 1]
            v += [v[-1]] * max(0, m - stop)
            out.append((name, _encode([int(x) for x in v])))
        return out

    return held


#: Scenario kinds whose alert reads counters over its window: once they stop growing, the
#: alert resolves within the window (the generated tests check it does).
_RESOLVING = ("per_stream", "share", "rate", "p99", "cascade", "resume")


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
        what = f"{signal.alert} ({signal.failure_class}/{signal.name})"
        last = 5 + wait + 1
        firing: list[tuple[str, _Drive, int]] = []
        for key, drive in drives.items():
            if not key.startswith("firing"):
                continue
            first = next((t for t in range(0, 24 * 60) if _breached(signal, drive.value(t))), None)
            assert first is not None, f"scenario {key!r} never breaches {signal.name}"
            firing.append((key, drive, first + wait))
            last = max(last, first + wait)
        for key, drive, at in firing:
            value = drive.value(at)
            assert value is not None
            fire = (_labels(signal), _annotations(signal, expected(desc, {"value": value})))
            checks: list[tuple[str, int, list[tuple[dict[str, str], dict[str, str]]]]] = []
            if at > 1:
                # The minute before: still pending (``for``), or not yet past the threshold.
                checks.append((signal.alert, at - 1, []))
            checks.append((signal.alert, at, [fire]))
            label = key.removeprefix("firing").strip()
            runs.append(
                _FcRun(
                    f"{what}{' ' + label if label else ''} fires at {at}m",
                    reads,
                    drive.series,
                    checks,
                )
            )
            if key == "firing" and scenario[0] in _RESOLVING:
                # Everything stops at the firing minute: one 5 m window later nothing is
                # left to judge, and the alert has resolved.
                runs.append(
                    _FcRun(
                        f"{what} stops at {at}m: resolved at {at + 6}m",
                        reads,
                        _held(drive.series(at), at),
                        [(signal.alert, at, [fire]), (signal.alert, at + 6, [])],
                    )
                )
        for key, drive in drives.items():
            if not key.startswith("firing"):
                at = last if drive.at is None else drive.at + ceil_minutes(signal.for_) + 1
                runs.append(
                    _FcRun(f"{what} {key}: silent", reads, drive.series, [(signal.alert, at, [])])
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
        share = kind == "share"

        def ratio(bad_k: float, total_k: float) -> float:
            if share:
                return bad_k / (bad_k + total_k)
            return max(bad_k - allowance, 0.0) / total_k

        # Just above the threshold at a full window, and the most that stays at or under it.
        bad = max(0, math.floor(thr * total + allowance / 5) - 2)
        while ratio(bad * 5, total * 5) <= thr:
            bad += 1
        under = bad - 1

        def counted(bad: int, total: int, floor: int = min_events) -> Callable[[int], float | None]:
            def value(t: int) -> float | None:
                k = min(t, 5)
                # The guard counts admitted streams, or for a share all arrivals.
                if t < 1 or (total + bad if share else total) * k < floor:
                    return None
                return ratio(bad * k, total * k)

            return value

        def feed(bad: int, total: int) -> Callable[[int], list[tuple[str, str]]]:
            return lambda m: [(requests, _linear(total, m)), (name, _linear(bad, m))]

        out["firing"] = _Drive(feed(bad, total), counted(bad, total))
        if under >= 0 and (thr == 0 or ratio(under * 5, total * 5) >= 0.9 * thr):
            out[f"just under the threshold ({under} of {total} a minute)"] = _Drive(
                feed(under, total), lambda t: None
            )
        out["healthy"] = _Drive(
            lambda m, total=total, name=name: [
                (requests, _linear(total, m)),
                (name, _flat(0, m)),
            ],
            lambda t: 0.0,
        )
        if min_events >= 2 and thr < 1:
            # At the guard: just enough streams in 5 m, every one failing (with retries
            # beyond the allowance): fires the minute the window holds min_events of them.
            few = math.ceil(min_events / 5)
            many = math.ceil((allowance + (2 * thr + 1) * few * 5) / 5)
            admitted = few
            if share:  # half the arrivals refused: a share far above any threshold
                many = math.ceil(few / 2)
                admitted = few - many
            out[f"firing at the guard ({few} streams a minute, all failing)"] = _Drive(
                feed(many, admitted), counted(many, admitted)
            )
            # Under the guard: every stream fails, but fewer than min_events finish per 5 m.
            e = min_events - 1
            e_bad = math.ceil(allowance + (2 * thr + 1) * e)

            def quiet(m: int, e: int = e, e_bad: int = e_bad) -> list[tuple[str, str]]:
                if share:  # the bad streams are all the arrivals there are
                    values = _explicit([i * e // 5 for i in range(m + 1)])
                    return [(requests, _flat(0, m)), (name, values)]
                return [
                    (requests, _explicit([i * e // 5 for i in range(m + 1)])),
                    (name, _explicit([i * e_bad // 5 for i in range(m + 1)])),
                ]

            out[f"low traffic ({e} streams per 5m, all failing)"] = _Drive(quiet, lambda t: None)
    elif kind == "rate":
        metric, extra = scenario[1], scenario[2]
        name = _series(metric, {**base, **extra})
        per_min = max(1, math.floor(thr * 60) - 1)
        while per_min * 5 / 300 <= thr:
            per_min += 1
        out["firing"] = _Drive(
            lambda m, name=name, per_min=per_min: [(name, _linear(per_min, m))],
            lambda t, per_min=per_min: None if t < 1 else (per_min * min(t, 5)) / 300.0,
        )
        if per_min > 1 and (per_min - 1) * 5 / 300 >= 0.9 * thr:
            out[f"just under the threshold ({per_min - 1} a minute)"] = _Drive(
                lambda m, name=name, n=per_min - 1: [(name, _linear(n, m))], lambda t: None
            )
        out["healthy"] = _Drive(lambda m, name=name: [(name, _flat(0, m))], lambda t: 0.0)
    elif kind == "p99":
        hist = scenario[1]
        lo = thr if thr > 0 else 1.0
        # Every observation in (lo, hi]: linear interpolation puts the p99 99 % of the way
        # from lo to hi, whatever the count. hi a tenth above lo: just above the threshold.
        hi = lo + max(1.0, math.floor(lo / 10))
        under = lo - max(1.0, math.floor(lo / 10))

        def buckets(bounds: dict[str, int], m: int, hist: str = hist) -> list[tuple[str, str]]:
            return [
                (_series(c.bucket(hist), {**base, "le": le}), _linear(per_min, m))
                for le, per_min in bounds.items()
            ] + [(_series(c.count(hist), base), _linear(bounds["+Inf"], m))]

        def p99_at(low: float, high: float, n: int) -> Callable[[int], float | None]:
            def value(t: int) -> float | None:
                if t < 1 or n * min(t, 5) < min_events:
                    return None
                return low + (high - low) * 0.99

            return value

        # Observations per minute: enough for the low-traffic guard within the 5 m window.
        n = max(10, math.ceil(min_events / 5))
        out["firing"] = _Drive(
            lambda m, lo=lo, hi=hi, n=n: buckets(
                {c.le_label(lo): 0, c.le_label(hi): n, "+Inf": n}, m
            ),
            p99_at(lo, hi, n),
        )
        if thr > 0 and under > 0:
            out[f"just under the threshold (every observation in ({num(under)}, {num(lo)}])"] = (
                _Drive(
                    lambda m, lo=lo, under=under, n=n: buckets(
                        {c.le_label(under): 0, c.le_label(lo): n, "+Inf": n}, m
                    ),
                    lambda t: None,
                )
            )
        if min_events >= 2:
            few = math.ceil(min_events / 5)
            out[f"firing at the guard ({few} observations a minute, all slow)"] = _Drive(
                lambda m, lo=lo, hi=hi, few=few: buckets(
                    {c.le_label(lo): 0, c.le_label(hi): few, "+Inf": few}, m
                ),
                p99_at(lo, hi, few),
            )
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
        # The signal reads each gauge at its peak over ``peak`` seconds, which spans
        # ``held`` one-minute samples.
        cap, peak = scenario[1], scenario[2]
        held = math.ceil(peak / 60)
        busy = math.floor(thr * cap) + 1
        calm = math.floor(thr * cap / 2)
        workers = ("worker-1", "worker-2")
        cap_base = {k: v for k, v in base.items() if k not in SERIES_LABELS}

        def cascade(
            m: int, in_flight: int | Callable[[int], int], phases: tuple[str, ...]
        ) -> list[tuple[str, str]]:
            out = []
            gauge = (
                _flat(in_flight, m)
                if isinstance(in_flight, int)
                else _explicit([in_flight(i) for i in range(m + 1)])
            )
            for w in workers:
                out.append((_series(c.IN_FLIGHT, {**base, "instance": w}), gauge))
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
        if held >= 2:
            # Callers backing off between failed streams: in flight dips every other
            # minute. Every peak range holds a busy minute, so the alert stays active.
            out[f"firing (in flight alternating {busy} and {calm} of {cap} each minute)"] = _Drive(
                lambda m, busy=busy, calm=calm: cascade(m, lambda i: calm if i % 2 else busy, two),
                lambda t, busy=busy, cap=cap: None if t < 1 else (busy * n) / (cap * n),
            )
        # One busy minute, then calm with timeouts still rising: once that minute has left
        # the peak range nothing is near the cap, whatever the alert's ``for``.
        out[f"{busy}/{cap} in flight at minute 1 only, then {calm}/{cap}"] = _Drive(
            lambda m, busy=busy, calm=calm: cascade(m, lambda i: busy if i == 1 else calm, two),
            lambda t: None,
            at=held,
        )
        out[f"in flight {busy}/{cap} per worker but timeouts in one phase only"] = _Drive(
            lambda m, busy=busy: cascade(m, busy, (c.TIMEOUT_IDLE,)), lambda t: None
        )
        out[f"timeouts in two phases but only {calm}/{cap} in flight per worker"] = _Drive(
            lambda m, calm=calm: cascade(m, calm, two), lambda t: None
        )
        under = math.ceil(thr * cap) - 1
        if under > 0 and under / cap >= 0.9 * thr:
            out[f"timeouts in two phases, {under}/{cap} in flight: just under"] = _Drive(
                lambda m, under=under: cascade(m, under, two), lambda t: None
            )
    elif kind == "resume":
        failed_name = _series(c.RESUME_FAILURE_TOTAL, base)
        ok_name = _series(c.RESUME_SUCCESS_TOTAL, base)

        def share_failed(failed: int, ok: int, floor: int = min_events):
            def value(t: int) -> float | None:
                k = min(t, 5)
                if t < 1 or (failed + ok) * k < floor:
                    return None
                return float(failed * k) / (float(failed * k) + float(ok * k))

            return value

        def resumes(failed: int, ok: int) -> Callable[[int], list[tuple[str, str]]]:
            return lambda m: [(failed_name, _linear(failed, m)), (ok_name, _linear(ok, m))]

        per_min = max(1000, min_events)
        failed = max(0, math.floor(thr * per_min) - 2)
        while failed <= per_min and failed / per_min <= thr:
            failed += 1
        if failed <= per_min:
            out["firing"] = _Drive(
                resumes(failed, per_min - failed), share_failed(failed, per_min - failed)
            )
            under = failed - 1
            if under / per_min >= 0.9 * thr:
                out[f"just under the threshold ({under} of {per_min} failing)"] = _Drive(
                    resumes(under, per_min - under), lambda t: None
                )
        if min_events >= 2 and thr < 1:
            few = math.ceil(min_events / 5)
            out[f"firing at the guard ({few} resumes a minute, all failing)"] = _Drive(
                resumes(few, 0), share_failed(few, 0)
            )
            e = min_events - 1

            def quiet(m: int, e: int = e) -> list[tuple[str, str]]:
                values = _explicit([i * e // 5 for i in range(m + 1)])
                return [(failed_name, values), (ok_name, _flat(0, m))]

            out[f"low traffic ({e} resumes per 5m, all failing)"] = _Drive(quiet, lambda t: None)
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

            # A busy hour long ago does not count: only the hour before the silence does.
            def busy_then_quiet(m: int, quiet: int = quiet) -> list[tuple[str, str]]:
                values, total = [], 0
                for i in range(m + 1):
                    values.append(total)
                    total += per_min if i < 60 else quiet if i < 130 else 0
                return [(requests, _explicit(values))]

            out[f"busy hour, quiet hour ({quiet} a minute), then silence"] = _Drive(
                busy_then_quiet, lambda t: None, at=135
            )
        out["healthy"] = _Drive(
            lambda m, per_min=per_min: [(requests, _linear(per_min, m))], lambda t: None
        )
    elif kind == "hung":
        # Streams finish for 10 minutes, then none does while 8 stay open: the alert fires
        # once a whole window has passed without one finishing.
        window = int(scenario[1] // 60)
        in_flight = _series(c.IN_FLIGHT, base)

        def hangs(m: int) -> list[tuple[str, str]]:
            done = _explicit([100 * min(i, 10) for i in range(m + 1)])
            return [(in_flight, _flat(8, m)), (requests, done)]

        out["firing"] = _Drive(hangs, lambda t: 0.0 if t >= 10 + window else 1.0)
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


def minute_timeline_holds(spec: Spec) -> tuple[bool, bool]:
    """Whether the generated tests' one-sample-a-minute timeline can predict (the SLO burn and
    outage alerts, the failure-class alerts) for ``spec``.

    Burn predictions read every enabled tier's windows in whole minutes; the failure-class
    scenarios are written for the default 5 m ``alerting.window``. A spec that compresses time
    (``steadystream demo``: windows of seconds) gets the rules, but no tests for the alerts
    the timeline cannot play, rather than tests that would fail; ``docs/generate.md`` says so.
    """
    burn = all(t.long % 60 == 0 and t.short % 60 == 0 for t in spec.alerting.tiers if t.enabled)
    return burn, spec.alerting.window == FIVE_MINUTES


def rule_tests(
    spec: Spec, rules_file: str, groups: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The promtool test file (as data) for the rules in ``rules_file`` (a path relative to
    the test file). ``groups`` are the spec's :func:`rule_groups` when the caller has them
    already (they are only read), else they are built."""
    burn_ok, fc_ok = minute_timeline_holds(spec)
    cases = (_burn_cases(spec) if burn_ok else []) + (_fc_cases(spec) if fc_ok else [])
    return {
        "rule_files": [rules_file],
        "evaluation_interval": f"{STEP_MINUTES}m",
        # Without an order promtool evaluates groups in random order, and an alert evaluated
        # before its SLI group would see the previous minute: SLIs first, as in the file.
        "group_eval_order": [g["name"] for g in (rule_groups(spec) if groups is None else groups)],
        "tests": [case.to_yaml() for case in cases],
    }
