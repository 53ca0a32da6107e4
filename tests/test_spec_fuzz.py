"""The spec loader under fuzzing: every committed corpus file and 300 seeded mutations of the
example spec end in acceptance or located ``file:line:col`` errors, never a traceback.

``make fuzz`` runs the same checker over 2,000+ cases and reports timings (docs/limits.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import spec_fuzz

CASES = 300


def test_corpus_holds_the_example_and_each_attack() -> None:
    """The corpus starts from the shipped example and keeps one file per attack met so far."""
    names = {p.name for p in spec_fuzz.corpus()}
    example = Path(__file__).parents[1] / "examples" / "chat-gateway" / "slo.yaml"
    assert (spec_fuzz.CORPUS / spec_fuzz.EXAMPLE).read_bytes() == example.read_bytes()
    assert {"alias-bomb.yaml", "deep-flow.yaml", "nul.yaml", "huge-int.yaml"} <= names


@pytest.mark.parametrize("path", spec_fuzz.corpus(), ids=lambda p: p.name)
def test_corpus_file_is_accepted_or_located(path: Path, tmp_path: Path) -> None:
    """Each corpus file loads, or fails with located one-line errors only."""
    outcome = spec_fuzz.check(path.name, path.read_bytes(), tmp_path / "slo.yaml")
    assert outcome.failure is None, outcome.failure
    assert outcome.accepted == (path.name in {"example.yaml", "merge-keys.yaml"})


@pytest.mark.timeout(240)  # a hang guard for the whole run, not a speed target
def test_mutated_specs_are_accepted_or_located(tmp_path: Path) -> None:
    """300 seeded mutations: none raises anything but a located SpecError; both outcomes
    occur, so the mutations neither all break the spec nor all miss it."""
    outcomes = spec_fuzz.run(spec_fuzz.cases(CASES, seed=0), tmp_path)
    failures = [f"{o.case}: {o.failure}" for o in outcomes if o.failure]
    assert not failures, "\n\n".join(failures[:5])
    assert len(outcomes) == CASES
    assert any(o.accepted for o in outcomes) and any(o.problems for o in outcomes)
