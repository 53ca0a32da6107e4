"""Mutation testing of the generated alert rules against their generated promtool tests.

Each mutant changes one alert rule the way a broken generator (or a careless hand edit) would:

* ``drop``: one ``and`` / ``or`` / ``unless`` clause of the expression removed (a guard, the
  short window of a burn tier, the vector(0) that makes vanished series read as zero);
* ``scale``: one threshold of a comparison (the alert's own, a guard's, the short window's)
  multiplied by 0.8 or 1.25;
* ``window``: every range or recorded window of one length replaced by the next one the SLI
  rules record (5m becomes 30m, 1h becomes 2h, 3d becomes 28d, ...);
* ``for``: the ``for`` removed.

A mutant is killed when ``promtool test rules`` fails with the mutated rule in place of the
original. The score is killed / all. To keep a run short, a mutant is tested with only its own
alert's rules (and, for SLO alerts, its SLO's recording rules) and only the test groups that
check them; for a burn tier, the groups written for that tier, the outage and the healthy
case. Both only make mutants harder to kill, never easier, and the unmutated rules must pass the
same reduced tests first, so the harness cannot call a mutant killed because it broke the test.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from steadystream.alerts import names, render_rules, rules_paths
from steadystream.alerts._rules import windows
from steadystream.generate import Source
from steadystream.spec import Spec, format_duration

SCALES = (0.8, 1.25)
_NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_COMPARISON = re.compile(rf"(>=|<=|>|<|==)\s*({_NUMBER})(?![\w.])")
_WINDOW = re.compile(r"\[(\d+[smhdw])\]|:(\d+[smhdw])\{")


@dataclass(frozen=True)
class Mutant:
    """One changed alert rule: which, how, and the rule as changed."""

    alert: str
    labels: tuple[tuple[str, str], ...]
    kind: str
    change: str
    rule: dict[str, Any]

    def __str__(self) -> str:
        where = ",".join(f"{k}={v}" for k, v in self.labels if k in ("slo", "long", "short"))
        return f"{self.alert}{{{where}}} {self.kind}: {self.change}"


def _clauses(expr: str) -> list[tuple[int, int]]:
    """(start, end) of every ``and``/``or``/``unless`` clause joined at the top level of
    ``expr`` (the operator and its matcher included), the first operand excepted."""
    spans = []
    depth = 0
    ops = re.compile(r" (and|or|unless)(?: on\([^)]*\)| ignoring\([^)]*\))? ")
    i = 0
    starts = []
    while i < len(expr):
        ch = expr[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            m = ops.match(expr, i)
            if m:
                starts.append(i)
                i = m.end()
                continue
        i += 1
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(expr)
        spans.append((start, end))
    return spans


def _split_condition(expr: str) -> tuple[str, str] | None:
    """``(inner) op threshold`` as (inner, " op threshold"), or None for another shape."""
    m = re.fullmatch(rf"\((.*)\)(\s*(?:>=|<=|>|<|==)\s*{_NUMBER})", expr, re.S)
    if m is None:
        return None
    return m.group(1), m.group(2)


def _scaled(value: str, factor: float) -> str:
    number = float(value)
    if "." not in value and "e" not in value:  # a count: move it by at least one
        moved = int(number * factor)
        if moved == int(number):
            moved += 1 if factor > 1 else -1
        return str(moved)
    return f"{number * factor:.6g}"


def mutants(spec: Spec, rules: list[dict[str, Any]]) -> Iterator[Mutant]:
    """Every mutant of every alert rule in ``rules``."""
    recorded = [format_duration(w) for w in windows(spec)]
    for rule in rules:
        if "alert" not in rule:
            continue
        expr: str = rule["expr"]
        labels = tuple(sorted(rule["labels"].items()))

        def mutant(
            kind: str,
            change: str,
            new_expr: str,
            drop_for: bool = False,
            rule: dict[str, Any] = rule,
            labels: tuple[tuple[str, str], ...] = labels,
        ) -> Mutant:
            new = {k: v for k, v in rule.items() if not (drop_for and k == "for")}
            new["expr"] = new_expr
            return Mutant(rule["alert"], labels, kind, change, new)

        split = _split_condition(expr)
        if split is not None:
            inner, tail = split
            for start, end in _clauses(inner):
                clause = inner[start:end].strip()
                yield mutant("drop", clause, f"({inner[:start]}{inner[end:]}){tail}")
        for m in _COMPARISON.finditer(expr):
            if float(m.group(2)) == 0:
                continue  # "> 0" guards a division; scaling 0 changes nothing
            for factor in SCALES:
                new_value = _scaled(m.group(2), factor)
                yield mutant(
                    "scale",
                    f"{m.group(0)} x{factor:g} -> {m.group(1)} {new_value}",
                    expr[: m.start(2)] + new_value + expr[m.end(2) :],
                )
        seen = {m.group(1) or m.group(2) for m in _WINDOW.finditer(expr)}
        for window in sorted(seen):
            if window not in recorded:
                longer = [w for w in recorded if w != window]
                if not longer:
                    continue
                to = longer[0] if window == "5m" else longer[-1]
            else:
                i = recorded.index(window)
                to = recorded[i + 1] if i + 1 < len(recorded) else recorded[i - 1]
            new_expr = expr.replace(f"[{window}]", f"[{to}]").replace(f":{window}{{", f":{to}{{")
            yield mutant("window", f"{window} -> {to}", new_expr)
        if "for" in rule:
            yield mutant("for", f"for: {rule['for']} dropped", expr, drop_for=True)


@dataclass
class Setup:
    """The reduced rules and tests one alert's mutants run against."""

    groups: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    target: tuple[int, int]  # (group, rule) index of the rule a mutant replaces

    def files(self, rule: dict[str, Any] | None, out: Path, name: str) -> Path:
        groups = [dict(g, rules=list(g["rules"])) for g in self.groups]
        if rule is not None:
            g, r = self.target
            groups[g]["rules"][r] = rule
        (out / f"{name}.rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
        test = {
            "rule_files": [f"{name}.rules.yaml"],
            "evaluation_interval": "1m",
            "group_eval_order": [g["name"] for g in groups],
            "tests": self.tests,
        }
        path = out / f"{name}.test.yaml"
        path.write_text(yaml.safe_dump(test, sort_keys=False))
        return path


_SLO_ALERTS = (names.ALERT_SLO_BURN, names.ALERT_SLO_OUTAGE)


_RECORDED = re.compile(r"steadystream:[a-z_]+(?::[a-z0-9]+)?")


def _needed(records: list[dict[str, Any]], texts: list[str]) -> list[dict[str, Any]]:
    """The recording rules ``texts`` read, directly or through other recording rules."""
    wanted = {name for text in texts for name in _RECORDED.findall(text)}
    by_name = {r["record"]: r for r in records}
    todo = list(wanted)
    while todo:
        rule = by_name.get(todo.pop())
        if rule is None:
            continue
        for name in _RECORDED.findall(rule["expr"]):
            if name not in wanted:
                wanted.add(name)
                todo.append(name)
    return [r for r in records if r["record"] in wanted]


def _setup(
    groups: list[dict[str, Any]],
    tests: list[dict[str, Any]],
    rule: dict[str, Any],
    variants: list[dict[str, Any]],
) -> Setup:
    labels = rule["labels"]
    if rule["alert"] in _SLO_ALERTS:
        slo = labels["slo"]
        tier = f"{labels['long']}/{labels['short']} " if "long" in labels else "outage"
        alerts = [
            r
            for g in groups
            for r in g["rules"]
            if r.get("alert") in _SLO_ALERTS and r["labels"].get("slo") == slo
        ]
        # Only the recording rules some kept alert, annotation or mutant reads: promtool
        # evaluates every rule every minute, and most of an SLO's windows are not read here.
        texts = [yaml.safe_dump(r) for r in [*alerts, *variants]]
        kept = []
        for g in groups:
            if "record" in g["rules"][0]:
                if g["rules"][0]["labels"].get("slo") == slo:
                    kept.append(dict(g, rules=_needed(g["rules"], texts)))
            elif any(r.get("alert") in _SLO_ALERTS for r in g["rules"]):
                mine = [r for r in g["rules"] if any(r is a for a in alerts)]
                kept.append(dict(g, rules=mine))
        wanted = [t for t in tests if t["name"].startswith((tier, "healthy"))]
        reduced = []
        for t in wanted:
            checks = [
                dict(
                    c,
                    exp_alerts=[
                        a for a in c.get("exp_alerts") or [] if a["exp_labels"].get("slo") == slo
                    ],
                )
                for c in t["alert_rule_test"]
                if c["alertname"] in _SLO_ALERTS
            ]
            reduced.append(dict(t, alert_rule_test=checks))
    else:
        kept = []
        for g in groups:
            mine = [r for r in g["rules"] if r.get("alert") == rule["alert"]]
            if mine:
                kept.append(dict(g, rules=mine))
        reduced = []
        for t in tests:
            checks = [c for c in t["alert_rule_test"] if c["alertname"] == rule["alert"]]
            if checks:
                reduced.append(dict(t, alert_rule_test=checks))
    for gi, g in enumerate(kept):
        for ri, r in enumerate(g["rules"]):
            if r is rule or r == rule:
                return Setup(kept, reduced, (gi, ri))
    raise AssertionError(f"rule {rule['alert']} not in its reduced setup")


@dataclass
class Score:
    killed: list[Mutant]
    survived: list[Mutant]

    @property
    def ratio(self) -> float:
        total = len(self.killed) + len(self.survived)
        return len(self.killed) / total if total else 0.0

    def report(self) -> str:
        lines = [
            f"mutation score {self.ratio:.1%}: {len(self.killed)} of "
            f"{len(self.killed) + len(self.survived)} mutants killed"
        ]
        lines += [f"  survived: {m}" for m in self.survived]
        return "\n".join(lines)


def _promtool(promtool: str, files: list[Path], cwd: Path) -> dict[str, bool]:
    """promtool test rules on ``files`` in one process: file name -> passed."""
    proc = subprocess.run(
        [promtool, "test", "rules", *[f.name for f in files]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    out = proc.stdout + proc.stderr
    result: dict[str, bool] = {}
    parts = re.split(r"Unit Testing:\s+(\S+)", out)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        result[name] = "SUCCESS" in body and "FAILED" not in body
    missing = {f.name for f in files} - set(result)
    assert not missing, f"promtool reported nothing for {sorted(missing)}:\n{out[-2000:]}"
    return result


def score(spec: Spec, promtool: str, work: Path, jobs: int = 2) -> Score:
    """Generate ``spec``'s rules and tests, mutate every alert rule, and run the tests."""
    files = render_rules(spec, Source("slo.yaml", "0" * 64))
    rules_path, _, tests_path = rules_paths(spec.service)
    groups = yaml.safe_load(files[rules_path])["groups"]
    tests = yaml.safe_load(files[tests_path])["tests"]
    alert_rules = [r for g in groups for r in g["rules"] if "alert" in r]

    baseline: list[Path] = []
    runs: list[tuple[Path, Mutant]] = []
    for i, rule in enumerate(alert_rules):
        variants = list(mutants(spec, [rule]))
        setup = _setup(groups, tests, rule, [m.rule for m in variants])
        baseline.append(setup.files(None, work, f"base-{i}"))
        for j, m in enumerate(variants):
            runs.append((setup.files(m.rule, work, f"m-{i}-{j}"), m))

    def chunks(paths: list[Path]) -> list[list[Path]]:
        size = max(1, len(paths) // (jobs * 4))
        return [paths[k : k + size] for k in range(0, len(paths), size)]

    with ThreadPoolExecutor(jobs) as pool:
        base_results: dict[str, bool] = {}
        for part in pool.map(lambda fs: _promtool(promtool, fs, work), chunks(baseline)):
            base_results.update(part)
        broken = sorted(name for name, ok in base_results.items() if not ok)
        assert not broken, f"the reduced tests fail on the unmutated rules: {broken}"
        results: dict[str, bool] = {}
        for part in pool.map(
            lambda fs: _promtool(promtool, fs, work), chunks([p for p, _ in runs])
        ):
            results.update(part)
    killed = [m for p, m in runs if not results[p.name]]
    survived = [m for p, m in runs if results[p.name]]
    return Score(killed, survived)
