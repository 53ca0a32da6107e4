"""Generated headers carry the digest of the loaded spec, not of its bytes: comments and
formatting leave ``generate --check`` up to date, a change of meaning makes it stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from steadystream import cli
from steadystream.spec import SpecError, parse_spec, spec_digest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = ROOT / "examples" / "chat-gateway" / "slo.yaml"

SPEC = """\
version: 1
service: chat-gateway
selector:
  job: chat-gateway
slos:
  - name: stream-errors
    objective: 99%
    indicator:
      errors: {errors: stream_errors_total, total: stream_requests_total}
"""
# The same spec: comments, flow style, other key order and quoting, 0.99 for 99%, the
# default period written out.
REFORMATTED = """\
# a comment that must not make anything stale
service: "chat-gateway"   # trailing comment
period: 28d
version: 1
slos: [{indicator: {errors: {total: stream_requests_total, errors: stream_errors_total}},
        objective: 0.99, name: stream-errors}]
selector: {job: 'chat-gateway'}
"""
CHANGED = SPEC.replace("objective: 99%", "objective: 99.5%")


def generate(spec: Path, out: Path, *extra: str) -> int:
    return cli.main(["generate", str(spec), "--out", str(out), *extra])


def test_digest_is_of_the_model_not_the_text() -> None:
    """Text and loaded spec give one digest; reformatting keeps it, a change of meaning
    does not."""
    spec = parse_spec(SPEC)
    assert spec_digest(SPEC) == spec_digest(SPEC.encode()) == spec_digest(spec)
    assert spec_digest(REFORMATTED) == spec_digest(SPEC)
    assert spec_digest(CHANGED) != spec_digest(SPEC)
    with pytest.raises(SpecError):
        spec_digest("version: 1\n")


@pytest.mark.parametrize("fmt", ["files", "kubernetes"])
def test_comment_and_reformat_keep_check_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """generate, then rewrite the spec with comments and another layout: --check exits 0
    and every generated file keeps its bytes, in either output format."""
    spec, out = tmp_path / "slo.yaml", tmp_path / "out"
    spec.write_text(SPEC)
    assert generate(spec, out, "--format", fmt) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    spec.write_text(REFORMATTED)
    capsys.readouterr()
    assert generate(spec, out, "--check", "--format", fmt) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "up to date" in captured.err
    assert generate(spec, out, "--format", fmt) == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("fmt", ["files", "kubernetes"])
def test_a_real_change_makes_check_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """A changed objective makes --check exit 1, with the new digest in the diff."""
    spec, out = tmp_path / "slo.yaml", tmp_path / "out"
    spec.write_text(SPEC)
    assert generate(spec, out, "--format", fmt) == 0
    spec.write_text(CHANGED)
    capsys.readouterr()
    assert generate(spec, out, "--check", "--format", fmt) == 1
    captured = capsys.readouterr()
    assert f"(sha256 {spec_digest(CHANGED)})" in captured.out
    assert f"(sha256 {spec_digest(SPEC)})" in captured.out
    assert "is stale" in captured.err


def test_example_with_its_comments_removed_is_still_up_to_date(tmp_path: Path) -> None:
    """The committed example regenerates identically from a copy of its spec stripped of
    every comment line (the header names the spec by path and model only)."""
    gen = tmp_path / "chat-gateway"
    shutil.copytree(EXAMPLE_SPEC.parent, gen)
    lines = (gen / "slo.yaml").read_text().splitlines(keepends=True)
    (gen / "slo.yaml").write_text("".join(x for x in lines if not x.lstrip().startswith("#")))
    assert generate(gen / "slo.yaml", gen, "--check") == 0
