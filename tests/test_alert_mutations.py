"""The generated promtool tests guard the alert logic: break any alert rule the way a generator
bug would (drop a guard, scale a threshold, widen a window, drop ``for``) and they fail.

Mutation score = mutants the tests catch / all mutants, with the real promtool
(``tests/mutation.py`` says how mutants are made and run). The floor is 90 %, on the committed
example and on a 30-day spec with 99.9 % objectives. The survivors are listed when the score
drops, and each expected one has a reason:

* a long window widened to the next (1d to 3d, 3d to the 28d period): the tests' histories
  are hours long, and over a history shorter than both windows they read the same;
* ``< 0.001`` per second on the traffic signals scaled either way: one stream in 5 minutes is
  already 0.0033/s, so no whole number of streams lies between the thresholds;
* the traffic-stopped floor scaled: the tests play one busy hour and one quiet one, not an
  hour of exactly 240 streams.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import steadystream as ss
from mutation import SCALES, Score, mutants, score
from steadystream.spec import Spec

ROOT = Path(__file__).resolve().parent.parent
FLOOR = 0.90


def _spec_30d() -> Spec:
    return Spec.model_validate(
        {
            "version": 1,
            "service": "gw",
            "period": "30d",
            "slos": [
                {
                    "name": "ttft",
                    "objective": "99.9%",
                    "indicator": {
                        "latency": {"metric": "stream_first_token_latency_ms", "threshold": "2s"}
                    },
                },
                {
                    "name": "errors",
                    "objective": "99.9%",
                    "indicator": {
                        "errors": {
                            "errors": "stream_errors_total",
                            "total": "stream_requests_total",
                        }
                    },
                },
            ],
        }
    )


def _check(result: Score) -> None:
    assert result.ratio >= FLOOR, result.report()
    # Every kind of mutant is tried, and each kind is mostly caught.
    for kind in ("drop", "scale", "window", "for"):
        made = [m for m in result.killed + result.survived if m.kind == kind]
        caught = [m for m in result.killed if m.kind == kind]
        assert made, f"no {kind!r} mutant was made"
        assert len(caught) / len(made) >= 0.75, result.report()


#: Each score runs promtool once per mutant (about 250 runs): minutes on a loaded 2-core machine,
#: past the suite's 300 s guard against a hung test. Still bounded.
SCORE_TIMEOUT_S = 1200


@pytest.mark.timeout(SCORE_TIMEOUT_S)
def test_mutation_score_on_the_committed_example(promtool: str, tmp_path: Path) -> None:
    """At least 90 % of the mutants of examples/chat-gateway's alerts fail its tests."""
    _check(score(ss.load_spec(ROOT / "examples" / "chat-gateway" / "slo.yaml"), promtool, tmp_path))


@pytest.mark.timeout(SCORE_TIMEOUT_S)
def test_mutation_score_on_a_30d_spec(promtool: str, tmp_path: Path) -> None:
    """The same on a 30-day period with 99.9 % objectives: factors 14.4/6/3/1 and per-tier
    low-traffic floors of 70 to 1001 events."""
    _check(score(_spec_30d(), promtool, tmp_path))


def test_mutants_change_the_rule_they_claim_to() -> None:
    """The harness itself: each mutant differs from its rule in exactly what it names."""
    rule = {
        "alert": "X",
        "expr": '(sum(increase(a{s="1"}[5m])) / (sum(increase(b[5m])) > 0) and on() '
        "(sum(increase(b[5m])) >= 20)) > 0.01",
        "for": "5m",
        "labels": {"severity": "warning"},
    }
    made = list(mutants(ss.default_spec("gw"), [rule]))
    kinds = {m.kind for m in made}
    assert kinds == {"drop", "scale", "window", "for"}
    drop = next(m for m in made if m.kind == "drop")
    assert drop.rule["expr"] == '(sum(increase(a{s="1"}[5m])) / (sum(increase(b[5m])) > 0)) > 0.01'
    scaled = sorted(m.rule["expr"].rsplit(" ", 1)[1] for m in made if "0.01 x" in m.change)
    assert scaled == sorted(f"{0.01 * f:.6g}" for f in SCALES)
    assert [m.rule["expr"].count("[30m]") for m in made if m.kind == "window"] == [3]
    assert "for" not in next(m for m in made if m.kind == "for").rule
