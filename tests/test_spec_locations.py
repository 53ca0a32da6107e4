"""Spec errors point where the fix goes: an unclosed flow collection or quote at its opener,
a default burn tier that cannot fire at the SLO objective (or period) that breaks it."""

from __future__ import annotations

import pytest

from steadystream.spec import Problem, SpecError, parse_spec

HEAD = "version: 1\nservice: x\n"


def problems(text: str) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "slo.yaml")
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "where", "opener"),
    [
        (HEAD + "slos: [{name: e, objective: 99%}\n", (3, 7), "'['"),
        (HEAD + "slos:\n  - name: e\n    objective: 99%\nselector: [a,\n  b\n", (6, 11), "'['"),
        (HEAD + "selector: {job: x,\n  model: y\n\n", (3, 11), "'{'"),
        (HEAD + 'service: "x\nperiod: 1d\n', (3, 10), "'\"'"),
    ],
)
def test_unclosed_flow_collection_points_at_its_opener(
    text: str, where: tuple[int, int], opener: str
) -> None:
    """PyYAML finds an unclosed [ / { / quote at the end of the file; the problem is located
    at the character that opened it, and says so."""
    [p] = problems(text)
    assert (p.line, p.column) == where, str(p)
    assert p.message.startswith(f"YAML syntax error: this {opener} is never closed")
    assert "the file ends at line" in p.message


def test_a_missing_comma_inside_a_closed_sequence_stays_where_it_is() -> None:
    """A flow sequence that is closed but misses a comma is located at the item after the gap,
    not at the [ (which is not the problem)."""
    [p] = problems(HEAD + "slos: [\n  {name: a, objective: 99%}\n  {name: b, objective: 99%}\n]\n")
    assert (p.line, p.column) == (5, 3), str(p)
    assert "is never closed" not in p.message


def test_unreachable_default_tier_points_at_the_objective() -> None:
    """No alerting.tiers in the file: a default tier that can never fire for a 90% SLO is
    reported at that SLO's objective, naming the tier, not at 1:1."""
    text = (
        HEAD
        + "slos:\n"
        + "  - name: ok\n    objective: 99%\n    indicator: {errors: {}}\n"
        + "  - name: loose\n    objective: 90%\n    indicator: {errors: {}}\n"
    )
    found = problems(text)
    assert {(p.line, p.column, p.path) for p in found} == {(8, 16, "slos[1].objective")}
    assert all("alerting.tiers[" in p.message for p in found)
    assert "objective 90% leaves an error budget of 10%" in found[0].message
    assert "raise the objective, or set alerting.tiers" in found[0].message


def test_unreachable_explicit_tier_still_points_at_the_tier() -> None:
    """With alerting.tiers written out, the tier's budget is where the problem is."""
    text = (
        HEAD
        + "slos:\n  - name: loose\n    objective: 90%\n    indicator: {errors: {}}\n"
        + "alerting:\n  tiers:\n    - {severity: critical, long: 1h, short: 5m, budget: 2%}\n"
    )
    [p] = problems(text)
    assert (p.line, p.path) == (9, "alerting.tiers[0].budget")
    assert "can never fire for SLO 'loose'" in p.message


def test_default_tier_longer_than_the_period_points_at_the_period() -> None:
    """A 1d period is shorter than the 3d default ticket tier: located at period."""
    [p] = problems(HEAD + "period: 1d\n")
    assert (p.line, p.column, p.path) == (3, 9, "period")
    assert "long window (3d)" in p.message and "alerting.tiers[3]" in p.message


def test_partial_spec_also_locates_default_tier_problems() -> None:
    """When another field fails too, the cross-field check on what did validate still
    points at the objective."""
    text = (
        HEAD
        + "stream: {bogus: 1}\n"
        + "slos:\n  - name: loose\n    objective: 90%\n    indicator: {errors: {}}\n"
    )
    paths = {p.path for p in problems(text)}
    assert "slos[0].objective" in paths and "stream.bogus" in paths
