"""Hostile specs: alias bombs, deep nesting, control characters, bad tags and huge values end
in one located ``file:line:col: path: message`` line each, never a traceback or a hang."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import steadystream as ss
from steadystream.spec import Problem, limits, parse_spec

MINIMAL = "version: 1\nservice: chat-gateway\n"
LINE = re.compile(r"^slo\.yaml:\d+:\d+: \S")

# The classic "billion laughs": 9 levels of 9 aliases each, 9**9 nodes once expanded.
ALIAS_BOMB = MINIMAL + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" if i else 'l0: &l0 "lol"\n'
    for i in range(10)
)


def problems(text: str) -> list[Problem]:
    with pytest.raises(ss.SpecError) as info:
        parse_spec(text, "slo.yaml")
    for line in str(info.value).splitlines():
        assert LINE.match(line), line
    assert "<unicode string>" not in str(info.value)
    return info.value.problems


def one(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def test_alias_bomb_is_refused_before_expansion() -> None:
    """A few hundred bytes of nested aliases are refused at the alias that crosses the node
    bound, instead of expanding to 387 million nodes."""
    assert len(ALIAS_BOMB.encode()) < 600
    p = one(ALIAS_BOMB)
    assert "aliases" in p.message and str(limits.MAX_NODES) in p.message
    assert p.line > 3


def test_many_aliases_are_refused() -> None:
    """More aliases than the bound is refused even when each expands to little."""
    n = limits.MAX_ALIASES + 1
    text = MINIMAL + "a: &a 1\nb: [" + ", ".join(["*a"] * n) + "]\n"
    p = one(text)
    assert p.line == 4 and "alias" in p.message and str(limits.MAX_ALIASES) in p.message


def test_a_few_aliases_are_fine() -> None:
    """Anchors and aliases within the bounds work as YAML says (shared tier lists)."""
    text = MINIMAL + (
        "alerting:\n  tiers:\n"
        "    - &page {severity: critical, long: 1h, short: 5m, budget: 2%}\n"
        "    - {<<: *page, long: 6h, short: 30m, budget: 5%}\n"
    )
    tiers = parse_spec(text, "slo.yaml").alerting.tiers
    assert [(t.severity, t.budget) for t in tiers] == [("critical", 0.02), ("critical", 0.05)]


def test_recursive_alias_is_refused() -> None:
    """An alias inside the node it names would make an endless structure."""
    p = one(MINIMAL + "x: &a [1, *a]\n")
    assert (p.line, "recursive" in p.message) == (3, True)


@pytest.mark.parametrize(
    "deep",
    [
        "x: " + "[" * 1000 + "]" * 1000 + "\n",
        "x: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n",
        "x:\n" + "".join(" " * i + "- \n" for i in range(1, 1000)),
    ],
    ids=["flow-sequence", "flow-mapping", "block"],
)
def test_deep_nesting_is_a_located_error(deep: str) -> None:
    """Nesting 1,000 deep gives a located error at the level that crosses the bound, not a
    RecursionError."""
    p = one(MINIMAL + deep)
    assert p.line >= 3 and "nested deeper" in p.message and str(limits.MAX_DEPTH) in p.message


@pytest.mark.parametrize(
    ("char", "col"),
    [("\0", 10), ("\x07", 10), ("\x1b", 10), ("\ufffe", 10)],
    ids=["nul", "bell", "escape", "non-character"],
)
def test_control_characters_are_located(char: str, col: int) -> None:
    """A NUL or other control character is reported at its line and column."""
    p = one(MINIMAL + f"period: 2{char}8d\n")
    assert (p.line, p.column) == (3, col)
    assert f"#x{ord(char):04x}" in p.message
    assert "\0" not in str(p) and "\x1b" not in str(p)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("!!int abc", "!!int"),
        ("!!int 0x", "!!int"),
        ("!!int ''", "!!int"),
        ("!!float ''", "!!float"),
        ("!!float nope", "!!float"),
        ("!!timestamp yesterday", "!!timestamp"),
        ("!!timestamp 2020-02-30", "!!timestamp"),
        ("!!binary 'not base64!'", "base64"),
        ("!!python/object:os.system x", "python/object"),
        ("9" * 5000, "int"),
    ],
)
def test_bad_tagged_values_are_located(value: str, needle: str) -> None:
    """A tag applied to a value it cannot construct, and an integer too long to convert,
    point at the value."""
    p = one(MINIMAL + f"period: {value}\n")
    assert (p.line, p.column) == (3, 9)
    assert needle in p.message
    assert len(str(p)) < 400


@pytest.mark.parametrize(
    ("text", "where", "needle"),
    [
        ("x: *nope\n", (3, 4), "undefined alias"),
        ("x: &a 1\ny: &a 2\n", (4, 4), "duplicate anchor"),
        ("? [a, b]\n: 1\n", (3, 3), "unhashable"),
        ("x: {a: 1\n", (3, 4), "flow mapping"),  # the unclosed {, not the end of the file
        ("--- 1\n--- 2\n", (2, 1), "single document"),
    ],
)
def test_multi_line_yaml_errors_become_one_located_line(
    text: str, where: tuple[int, int], needle: str
) -> None:
    """PyYAML's multi-line errors (context, then problem, naming "<unicode string>") become one
    line naming the file."""
    p = one(MINIMAL + text if not text.startswith("---") else text)
    assert (p.line, p.column) == where, str(p)
    assert needle in p.message and "\n" not in str(p)


def test_lone_surrogate_is_a_located_error() -> None:
    """A "\\ud800" escape makes a string no file or label can hold: refused at the value."""
    p = one(MINIMAL + 'selector: {model: "\\ud800"}\n')
    assert (p.line, p.column) == (3, 19) and "surrogate" in p.message


def test_problem_output_is_bounded() -> None:
    """Thousands of problems print as the first hundred and a located count of the rest."""
    with pytest.raises(ss.SpecError) as info:
        parse_spec(MINIMAL + "".join(f"k{i}: 1\n" for i in range(5000)), "slo.yaml")
    lines = str(info.value).splitlines()
    assert len(info.value.problems) == 5000
    assert len(lines) == limits.MAX_PRINTED_PROBLEMS + 1
    assert lines[-1] == f"slo.yaml:{3 + limits.MAX_PRINTED_PROBLEMS}:1: and 4900 more problems"


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    """A spec file over the size bound is refused before it is parsed."""
    big = tmp_path / "slo.yaml"
    big.write_bytes(MINIMAL.encode() + b"#" * limits.MAX_SPEC_BYTES)
    with pytest.raises(ss.SpecError, match=r"slo\.yaml:1:1: the file is .* over the limit"):
        ss.load_spec(big)


def test_hostile_keys_are_printed_escaped_and_bounded() -> None:
    """A key with a newline, an escape sequence or 100,000 characters still prints as one
    short line."""
    found = problems(MINIMAL + '"a\\nb\\e[31m": 1\n? ' + "k" * 100_000 + "\n: 1\n")
    assert len(found) == 2
    for p in found:
        assert "\n" not in str(p) and "\x1b" not in str(p) and len(str(p)) < 400


@pytest.mark.parametrize("case", ["alias-bomb", "deep", "nul"])
def test_cli_validate_reports_hostile_specs_without_traceback(tmp_path: Path, case: str) -> None:
    """`steadystream validate` exits 1 with located lines, no traceback, for each attack."""
    text = {
        "alias-bomb": ALIAS_BOMB,
        "deep": MINIMAL + "x: " + "[" * 5000 + "]" * 5000 + "\n",
        "nul": MINIMAL + "period: \0\n",
    }[case]
    spec = tmp_path / "slo.yaml"
    spec.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "steadystream", "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{spec}:") for line in lines), done.stderr


def test_non_string_keys_are_located_at_their_line() -> None:
    """Keys YAML reads as a number, null or date are reported at their own line, not 1:1."""
    found = problems(MINIMAL + "1: a\n~: b\n2020-01-01: c\n1.5: d\n")
    assert [p.line for p in found] == [3, 4, 5, 6]
    assert all("keys should be strings" in p.message for p in found)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["generate", "{spec}", "--out", "{out}"], 1),
        (["demo", "--spec", "{spec}", "--duration", "1"], 2),
        (["triage", "--spec", "{spec}", "--prometheus", "http://127.0.0.1:9"], 2),
    ],
    ids=["generate", "demo", "triage"],
)
@pytest.mark.timeout(120)  # the alias bomb, unbounded, would run out of memory instead
def test_every_command_that_loads_a_spec_refuses_the_alias_bomb(
    tmp_path: Path, command: list[str], code: int
) -> None:
    """generate, demo --spec and triage --spec refuse the alias bomb with its located line
    and their usual exit code, and write nothing."""
    spec = tmp_path / "slo.yaml"
    spec.write_text(ALIAS_BOMB)
    out = tmp_path / "out"
    args = [a.format(spec=spec, out=out) for a in command]
    done = subprocess.run(
        [sys.executable, "-m", "steadystream", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{spec}:8:35: refused: aliases expand the document" in done.stderr
    assert not out.exists()
