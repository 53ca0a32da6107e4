"""Rule YAML: the libyaml fast path writes exactly what PyYAML's emitter writes."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from steadystream.alerts import _yaml

OPTIONS = _yaml._OPTIONS

# Keys and values like those in rule files (names, PromQL, Go templates, durations), plus the
# characters YAML treats specially.
text = st.text(
    alphabet=st.sampled_from([*"abcXYZ019 _-:{}[]#&*!|>'\"%@`,.?=~$()+/\\\n\t", "é", "⏱"]),
    max_size=40,
)
scalars = st.one_of(text, st.integers(-5, 10**6), st.floats(0, 100, allow_nan=False), st.booleans())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(text.filter(bool), inner, max_size=4)
    ),
    max_leaves=25,
)


def reference(data: Any) -> str:
    return yaml.dump(data, Dumper=_yaml._Dumper, **OPTIONS)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(text.filter(bool), documents, min_size=1, max_size=4))
def test_fast_path_matches_pure_python_emitter(data: dict[str, Any]) -> None:
    """Whatever path _emit takes, its bytes equal the pure-Python emitter's."""
    assert _yaml._emit(data) == reference(data)


def test_fast_path_is_taken_for_rule_files() -> None:
    """libyaml is installed here, and a typical rule group goes through it unchanged, in the
    layout both emitters write (a sequence at its key's column)."""
    assert _yaml._CDumper is not None
    group = {
        "groups": [
            {
                "name": "steadystream-slo-ttft",
                "interval": "1m",
                "rules": [
                    {
                        "record": "steadystream:slo_error_ratio:5m",
                        "expr": 'sum(rate(x_total{job="a"}[5m]))\n/ ignoring(le) 2',
                        "labels": {"slo": "ttft", "service": "chat-gateway"},
                    }
                ],
            }
        ]
    }
    fast = yaml.dump(group, Dumper=_yaml._CDumper, **OPTIONS)
    assert fast == reference(group) == _yaml._emit(group)
    assert fast.startswith("groups:\n- interval: 1m\n  name: steadystream-slo-ttft\n  rules:\n  - ")


def test_inputs_the_emitters_disagree_on_take_the_pure_python_emitter() -> None:
    """Non-ASCII text, an empty or long key and a keep-chomped block are refused by the
    libyaml path; _emit still writes them, as the pure-Python emitter does."""
    assert _yaml._CDumper is not None
    for data in (
        {"a": "⏱ \U0001f600"},
        {"": 1},
        {"k" * 127: 1},
        {"a": "two\n\n"},
        {"a": "\n"},
    ):
        try:
            yaml.dump(data, Dumper=_yaml._CDumper, **OPTIONS)
        except _yaml._Unsupported:
            pass
        else:
            raise AssertionError(f"libyaml path accepted {data!r}")
        assert _yaml._emit(data) == reference(data)
        assert yaml.safe_load(_yaml._emit(data)) == data
