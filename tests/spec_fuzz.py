"""A seeded mutation fuzzer for the spec loader, shared by ``tests/test_spec_fuzz.py`` (a few
hundred cases on every ``make test``) and ``make fuzz`` (thousands, with timings).

Every case starts from a file of the committed corpus (``tests/fuzz/spec/``: the example spec
and one file per attack already met) and applies one to three mutations: byte flips and
control characters, line cuts and re-indents, hostile values (bad tags, aliases, huge
numbers, deep nesting) and whole-document attacks. A case passes when ``load_spec`` either
accepts the file or raises :class:`~steadystream.spec.SpecError` whose every line is
``FILE:LINE:COL: ...`` naming the file; anything else (another exception, an unlocated or
multi-line message) is a failure, reported with the seed that reproduces it.

    python tests/spec_fuzz.py --cases 2000 --seed 1   # make fuzz
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from steadystream.spec import SpecError, limits, load_spec

CORPUS = Path(__file__).parent / "fuzz" / "spec"
EXAMPLE = "example.yaml"  # a copy of examples/chat-gateway/slo.yaml

HOSTILE_VALUES: tuple[bytes, ...] = (
    b"!!int abc",
    b"!!int 0x",
    b"!!float nope",
    b"!!timestamp yesterday",
    b"!!timestamp 2020-02-30",
    b"!!binary '@@'",
    b"!!set {a, b}",
    b"!!omap [a, b]",
    b"!!python/object/apply:os.system ['true']",
    b"!!str",
    b"*undefined",
    b"&a [1, *a]",
    b"9" * 5000,
    b"-" + b"9" * 4301,
    b"1e999",
    b"-.inf",
    b".nan",
    b"0o777777777777777777777",
    b"190:20:30:10:10:10:10:10",
    b"~",
    b"[]",
    b"{}",
    b"[" * 200 + b"]" * 200,
    b"{a: " * 80 + b"1" + b"}" * 80,
    b'"\\ud800"',
    b'"\\x00\\x1b[2J"',
    b'"\\u202e"',
    b"'unterminated",
    b'"unterminated',
    b"|\n  block\n   text",
    b">-",
    b"? [a]",
    b"<<: *x",
    b"&x",
    b"!custom 1",
    b"\x00",
    b"\xff\xfe",
    b"\t1",
    b"a" * 3000,
    b"2%%",
    b"-1ms",
    b"1e308d",
    b"99999999999999999999999s",
    b"true",
    b"null",
)
CONTROL = b"\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\t\r\n\xff\xc3"
# Appended whole: an alias bomb, a long alias chain and deep block nesting.
DOCUMENT_ATTACKS: tuple[bytes, ...] = (
    b"".join(
        (b"l%d: &l%d [%s]\n" % (i, i, b", ".join([b"*l%d" % (i - 1)] * 9)))
        if i
        else b'l0: &l0 "lol"\n'
        for i in range(10)
    ),
    b"a0: &a0 x\n"
    + b"".join(b"a%d: &a%d [*a%d, *a%d]\n" % (i, i, i - 1, i - 1) for i in range(1, 40)),
    b"deep:\n" + b"".join(b" " * i + b"- \n" for i in range(1, 200)),
    b"deep: " + b"[" * 5000,
    b"many: [" + b", ".join([b"*m"] * 400) + b"]\n",
    b"---\nversion: 1\n",
    b"...\n",
    b"%YAML 1.1\n---\n",
)


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]


def _control(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + bytes([rng.choice(CONTROL)]) + data[i:]


def _cut(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randrange(1, 64) :]


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randrange(1, 200))
    return data[:j] + data[i:j] + data[j:]


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _drop_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"".join(lines)


def _copy_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return b"".join(lines)


def _swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def _indent(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    if rng.random() < 0.5:
        lines[i] = b" " * rng.randrange(1, 5) + lines[i]
    else:
        lines[i] = lines[i].lstrip(b" ")
    return b"".join(lines)


def _hostile_value(rng: random.Random, data: bytes) -> bytes:
    """Replace the value of one ``key: value`` line (or a list item) with a hostile one."""
    lines = _lines(data)
    candidates = [i for i, line in enumerate(lines) if re.search(rb"(: |- )\S", line)]
    if not candidates:
        return data + b"x: " + rng.choice(HOSTILE_VALUES) + b"\n"
    i = rng.choice(candidates)
    m = re.search(rb"(: |- )", lines[i])
    assert m is not None
    end = b"\n" if lines[i].endswith(b"\n") else b""
    lines[i] = lines[i][: m.end()] + rng.choice(HOSTILE_VALUES) + end
    return b"".join(lines)


def _hostile_key(rng: random.Random, data: bytes) -> bytes:
    key = rng.choice((b"? [a, b]\n:", b"1:", b"~:", b'"\\e[31m\\n":', b"<<:", b"k" * 2000 + b":"))
    return data + key + b" " + rng.choice(HOSTILE_VALUES) + b"\n"


def _document(rng: random.Random, data: bytes) -> bytes:
    return data + rng.choice(DOCUMENT_ATTACKS)


MUTATORS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _flip,
    _control,
    _cut,
    _duplicate,
    _truncate,
    _drop_line,
    _copy_line,
    _swap_lines,
    _indent,
    _hostile_value,
    _hostile_value,
    _hostile_value,
    _hostile_key,
    _document,
)


def corpus() -> list[Path]:
    """The committed seed files, by name."""
    return sorted(CORPUS.glob("*.yaml"))


def cases(n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``n`` mutated specs, deterministic for ``seed``: ``(case id, bytes)``."""
    seeds = [(p.name, p.read_bytes()) for p in sorted(corpus(), key=lambda p: p.name != EXAMPLE)]
    for k in range(n):
        rng = random.Random(f"{seed}:{k}")
        # Half the cases start from the example, so most mutations hit a valid spec.
        name, data = seeds[0] if rng.random() < 0.5 else rng.choice(seeds)
        for _ in range(rng.randint(1, 3)):
            data = rng.choice(MUTATORS)(rng, data)
        yield f"seed {seed} case {k} (from {name})", data


@dataclass
class Outcome:
    case: str
    accepted: bool
    problems: int
    seconds: float
    failure: str | None = None


def check(case: str, data: bytes, path: Path) -> Outcome:
    """Load ``data`` from ``path``: accepted, or located errors only; anything else fails."""
    path.write_bytes(data)
    located = re.compile(re.escape(str(path)) + r":[1-9]\d*:[1-9]\d*: \S")
    start = time.perf_counter()
    try:
        load_spec(path)
    except SpecError as exc:
        seconds = time.perf_counter() - start
        text = str(exc)
        lines = text.split("\n")
        bad = [line for line in lines if not located.match(line)]
        failure = None
        cap = limits.MAX_PRINTED_PROBLEMS
        expected = min(len(exc.problems), cap) + (len(exc.problems) > cap)
        if not exc.problems or len(lines) != expected:
            failure = f"{len(exc.problems)} problems printed as {len(lines)} lines:\n{text}"
        elif bad or "<unicode string>" in text:
            failure = f"unlocated error line: {(bad or lines)[0][:300]!r}"
        return Outcome(case, False, len(exc.problems), seconds, failure)
    except BaseException as exc:  # any other exception is what the fuzzer looks for
        if isinstance(exc, KeyboardInterrupt):
            raise
        seconds = time.perf_counter() - start
        return Outcome(case, False, 0, seconds, "traceback:\n" + traceback.format_exc())
    return Outcome(case, True, 0, time.perf_counter() - start)


def run(inputs: Iterator[tuple[str, bytes]], workdir: Path) -> list[Outcome]:
    return [check(case, data, workdir / "slo.yaml") for case, data in inputs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--save", action="store_true", help="copy failing cases into the corpus directory"
    )
    args = parser.parse_args(argv)
    failures = []
    inputs = list(cases(args.cases, args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcomes = run(iter(inputs), Path(tmp))
        total = time.perf_counter() - start
    by_case = dict(inputs)
    for o in outcomes:
        if o.failure:
            failures.append(o)
            print(f"FAIL {o.case}: {o.failure}", file=sys.stderr)
            if args.save:
                name = re.sub(r"\W+", "-", o.case).strip("-") + ".yaml"
                (CORPUS / name).write_bytes(by_case[o.case])
    times = sorted(o.seconds for o in outcomes)
    accepted = sum(o.accepted for o in outcomes)
    print(
        f"spec fuzz: {len(outcomes)} cases (seed {args.seed}, corpus of {len(corpus())}): "
        f"{accepted} accepted, {len(outcomes) - accepted - len(failures)} located errors, "
        f"{len(failures)} failures; {total:.1f} s in all, per case median "
        f"{times[len(times) // 2] * 1000:.1f} ms, p99 {times[int(len(times) * 0.99)] * 1000:.1f} "
        f"ms, max {times[-1] * 1000:.1f} ms"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
