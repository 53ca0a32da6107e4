"""The ``steadystream`` command line: the only place that touches argv, files and the environment.

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .spec import SpecError, json_schema_text, load_spec


def _err(message: str) -> None:
    print(message, file=sys.stderr)


# ------------------------------------------------------------------------------- validate
def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        _err(str(exc))
        return 1
    print(f"{args.spec}: ok ({spec.service}: {len(spec.slos)} SLOs)")
    return 0


# --------------------------------------------------------------------------------- schema
def _cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(json_schema_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steadystream",
        description="Observability and SRE operations for LLM token streaming, from one SLO spec.",
    )
    parser.add_argument("--version", action="version", version=f"steadystream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a spec; print file:line:col: path: message")
    p.add_argument("spec", help="path to the YAML SLO spec")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("schema", help="print the spec's JSON Schema")
    p.set_defaults(func=_cmd_schema)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
