"""Rule YAML: the direct layout writes exactly what PyYAML's emitter writes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from steadystream.alerts import _yaml

OPTIONS = _yaml._OPTIONS

# Keys and values like those in rule files (names, PromQL, Go templates, durations), plus the
# characters YAML treats specially, line breaks, and text outside ASCII.
text = st.text(
    alphabet=st.sampled_from(
        [*"abcXYZ019 _-:{}[]#&*!|>'\"%@`,.?=~$()+/\\\n\t\r", "é", "⏱", "\x85", "\u2028", "𝄞"]
    ),
    max_size=40,
)
scalars = st.one_of(
    text,
    st.sampled_from(["true", "no", "~", "null", "1e3", "0x1F", "1_000", ".inf", "-", "- a"]),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=25,
)


def reference(data: Any) -> str:
    return yaml.dump(data, Dumper=_yaml._Dumper, **OPTIONS)


@pytest.mark.parametrize("scalars", ["libyaml", "pure"])
@settings(max_examples=500, deadline=None)
@given(data=st.dictionaries(text, documents, max_size=4))
def test_layout_matches_pure_python_emitter(scalars: str, data: dict[str, Any]) -> None:
    """Whatever path _emit takes, and whether libyaml renders the scalars or PyYAML does, the
    bytes equal the pure-Python emitter's."""
    assert _yaml._CSafeDumper is not None, "PyYAML here is built with libyaml"
    with pytest.MonkeyPatch.context() as mp:
        if scalars == "pure":
            mp.setattr(_yaml, "_CSafeDumper", None)
        assert _yaml._emit(data) == reference(data)


def test_rule_files_are_laid_out_directly() -> None:
    """A typical rule group, literal block included, is written by the direct layout."""
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
                    },
                    {"alert": "A", "for": "5m", "labels": {}, "annotations": {"x": [[1, 2.5]]}},
                ],
            }
        ]
    }
    assert _yaml._layout(group) == reference(group)


@pytest.mark.parametrize(
    "data",
    [
        {"k" * 128: 1},  # a complex key
        {"a\nb": 1},  # a multi-line key
        {"": 1},  # an empty key
        {"k": "kept\n\n"},  # a keep-chomped block
        {1: "a"},  # a key that is not a string
        {"k": ("a", "b")},  # a tuple
    ],
)
def test_documents_outside_the_layout_fall_back(data: dict[Any, Any]) -> None:
    with pytest.raises(_yaml._Unsupported):
        _yaml._layout(data)
    assert _yaml._emit(data) == reference(data)
