"""The ``steadystream`` command line: the only place that touches argv, files and the environment.

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from .spec import Problem, SpecError, json_schema_text, load_spec
from .version import __version__

if TYPE_CHECKING:
    from .spec import Spec


def _err(message: str) -> None:
    print(message, file=sys.stderr)


# ---------------------------------------------------------------------------- spec inputs
#: File names a directory given as a spec argument contributes (directly in it, not below).
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class _Input:
    """One spec file named on the command line, directly or through a directory."""

    path: str
    via_directory: bool


def _inputs(args: Sequence[str]) -> tuple[list[_Input], list[Problem]]:
    """The spec files ``args`` name, in order: a file as given, a directory as its ``*.yaml``
    and ``*.yml`` files (sorted, not recursive). A directory without any is a problem."""
    import os

    files: list[_Input] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for arg in args:
        if os.path.isdir(arg):
            found = sorted(
                e.path
                for e in os.scandir(arg)
                if e.name.endswith(SPEC_SUFFIXES) and e.is_file() and not e.name.startswith(".")
            )
            if not found:
                problems.append(
                    Problem(arg, 1, 1, "", "directory holds no spec file (*.yaml, *.yml)")
                )
            new = [_Input(f, True) for f in found]
        else:
            new = [_Input(arg, False)]
        for item in new:
            key = os.path.realpath(item.path)
            if key not in seen:  # the same file named twice (a file and its directory)
                seen.add(key)
                files.append(item)
    return files, problems


def _several(args: Sequence[str], files: Sequence[_Input]) -> bool:
    """Several specs: more than one argument, or any directory. Decided by the command line,
    never by how many files a directory holds today, so the output layout is stable."""
    return len(args) > 1 or any(f.via_directory for f in files)


def _load_any(path: str) -> tuple[Spec, str]:
    """The spec at ``path`` and its format: a steadystream spec, or a Sloth or OpenSLO file
    imported on the way (detected by its ``version``/``apiVersion``)."""
    from .importer import load_any

    return load_any(path)


def _load_all(files: Sequence[_Input]) -> tuple[list[tuple[str, Spec]], list[Problem]]:
    loaded: list[tuple[str, Spec]] = []
    problems: list[Problem] = []
    for item in files:
        try:
            loaded.append((item.path, _load_any(item.path)[0]))
        except SpecError as exc:
            problems.extend(exc.problems)
    return loaded, problems


def _problem_dict(p: Problem) -> dict[str, object]:
    return {
        "file": p.file,
        "line": p.line,
        "column": p.column,
        "path": p.path,
        "message": p.message,
    }


# ------------------------------------------------------------------------------- validate
def _cmd_validate(args: argparse.Namespace) -> int:
    import json

    files, problems = _inputs(args.spec)
    if not args.json:
        for p in problems:  # a directory without specs
            _err(str(p))
    results: list[dict[str, object]] = []
    for item in files:
        try:
            spec, fmt = _load_any(item.path)
        except SpecError as exc:
            problems.extend(exc.problems)
            results.append(
                {
                    "file": item.path,
                    "ok": False,
                    "problems": [_problem_dict(p) for p in exc.problems],
                }
            )
            if not args.json:
                _err(str(exc))
            continue
        results.append(
            {"file": item.path, "ok": True, "service": spec.service, "slos": len(spec.slos)}
        )
        if not args.json:
            via = "" if fmt == "steadystream" else f", imported from {_format_name(fmt)}"
            print(f"{item.path}: ok ({spec.service}: {len(spec.slos)} SLOs{via})")
    code = 1 if problems else 0
    if args.json:
        doc = {
            "ok": code == 0,
            "exit_code": code,
            "specs": results,
            "problems": [_problem_dict(p) for p in problems],
        }
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return code


def _format_name(fmt: str) -> str:
    from .importer import FORMAT_NAMES

    return FORMAT_NAMES[fmt]


# --------------------------------------------------------------------------------- import
def _cmd_import(args: argparse.Namespace) -> int:
    from .importer import import_text, to_yaml
    from .spec import parse_spec, read_spec_text

    try:
        imported = import_text(read_spec_text(args.file), args.file)
    except SpecError as exc:
        _err(str(exc))
        return 1
    text = to_yaml(imported, args.file)
    # What is printed must validate as it is (the round trip `validate` relies on).
    parse_spec(text, "<imported>")
    sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------------------- generate
def _cmd_generate(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from .generate import check_output, render_all, source_for, write_output

    files, problems = _inputs(args.spec)
    loaded, load_problems = _load_all(files)
    problems += load_problems
    if problems:
        for p in problems:  # as validate prints them; nothing is written
            _err(str(p))
        return 1
    # Where each spec's files go: DIR itself for one spec file, DIR/<service> for several.
    several = _several(args.spec, files)
    plans: list[tuple[str, str, dict[str, str]]] = []  # (spec path, output dir, files)
    claimed: dict[str, str] = {}
    for path, spec in loaded:
        out = os.path.join(args.out, spec.service) if several else args.out
        if spec.service in claimed:
            _err(
                f"{path}: service {spec.service!r} is also the service of "
                f"{claimed[spec.service]}; both would be generated into {out}: give each "
                "spec its own service, or generate them separately; nothing written"
            )
            return 1
        claimed[spec.service] = path
        try:
            rendered = render_all(spec, source_for(path, out, spec), format=args.format)
        except Exception as exc:  # a renderer's error: report it, write nothing
            _err(f"{path}: cannot generate: {type(exc).__name__}: {exc}; nothing written")
            return 1
        plans.append((path, out, rendered))
    if args.check:
        stale = False
        for _, out, rendered in plans:
            try:
                result = check_output(out, rendered, format=args.format)
            except OSError as exc:
                _err(f"{out}: cannot check: {exc}")
                return 1
            sys.stdout.write(result.diff)
            for label, paths in (
                ("would change", result.changed),
                ("would be added", result.added),
                ("would be removed", result.removed),
            ):
                for rel in paths:
                    _err(f"{label}: {Path(out) / rel}")
            _err(result.summary(out))
            stale = stale or result.stale
        return 1 if stale else 0
    for _, out, rendered in plans:
        try:
            write_output(out, rendered, format=args.format)
        except (OSError, ValueError) as exc:
            _err(f"{out}: nothing written: {exc}")
            return 1
        counts: dict[str, int] = {}
        for rel in rendered:
            top = rel.split("/", 1)[0]
            counts[top] = counts.get(top, 0) + 1
        detail = ", ".join(f"{top}: {k}" for top, k in sorted(counts.items()))
        print(f"wrote {len(rendered)} files to {out} ({detail})")
    return 0


# --------------------------------------------------------------------------------- schema
def _cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(json_schema_text())
    return 0


# ----------------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    import json

    from .demo import DEFAULT_FAULTS, DEFAULT_INCIDENT, DEFAULT_SERVICE, DEFAULT_STREAMS, run_demo
    from .simulate import PROFILES
    from .spec import default_spec

    steady = args.duration is not None
    faults = args.faults or (DEFAULT_FAULTS if steady else DEFAULT_INCIDENT)
    if faults not in PROFILES:
        _err(
            f"steadystream demo: unknown fault profile {faults!r}; known: "
            f"{', '.join(sorted(PROFILES))}"
        )
        return 2
    if steady and args.keep:
        _err("steadystream demo: --keep applies to the scripted incident; leave out --duration")
        return 2
    try:
        spec = load_spec(args.spec) if args.spec else None
    except SpecError as exc:
        _err(str(exc))
        return 2
    generic = [slo.name for slo in spec.slos if slo.indicator.generic] if spec else []
    if generic:
        _err(
            f"steadystream demo: {args.spec}: SLO {', '.join(generic)} reads its own PromQL "
            "queries, which the demo's simulated streams do not feed; give the demo a spec "
            "of stream SLOs"
        )
        return 2
    out = sys.stderr if args.json else sys.stdout
    if not steady:
        return _demo_incident(args, faults, spec, out)
    try:
        report = run_demo(
            duration=args.duration,
            streams=args.streams or DEFAULT_STREAMS,
            faults=faults,
            metrics_port=args.metrics_port,
            spec=spec or default_spec(DEFAULT_SERVICE),
            seed=args.seed,
            out=out,
            handle_signals=True,
            slow_consumers=args.slow_consumers,
            provider=args.provider,
        )
    except OSError as exc:
        # Typically the metrics port is taken or privileged: say which, without a traceback.
        _err(f"steadystream demo: cannot start (metrics port {args.metrics_port}): {exc}")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    else:
        print(file=out)
        out.write(report.render_text())
    # The demo ran: exit 0 whatever the SLO verdict (the verdict is in the report).
    return 0


def _demo_incident(args: argparse.Namespace, faults: str, spec: object, out: object) -> int:
    """``demo`` without ``--duration``: the scripted incident in a real Prometheus."""
    import json

    from .demo import IncidentReport, run_incident
    from .demo.incident import INCIDENT_STREAMS
    from .testing.prometheus import PrometheusError, PrometheusNotFound, find_prometheus

    binary = None
    if not args.no_prometheus:
        try:
            binary = find_prometheus()
        except PrometheusNotFound:
            binary = None  # the demo says in one line how to get the whole loop

    shown: list[bool] = []

    def show(report: IncidentReport) -> None:
        shown.append(True)
        if args.json:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
            sys.stdout.flush()
        else:
            print(file=out)  # type: ignore[call-overload]
            out.write(report.render_text())  # type: ignore[attr-defined]
            out.flush()  # type: ignore[attr-defined]

    try:
        report = run_incident(
            faults=faults,
            streams=args.streams or INCIDENT_STREAMS,
            spec=spec,
            binary=binary,
            seed=args.seed,
            out=out,
            keep=args.keep,
            on_report=show,
            handle_signals=True,
            provider=args.provider,
            metrics_port=args.metrics_port,
        )
    except PrometheusError as exc:
        _err(f"steadystream demo: Prometheus failed: {exc}")
        return 1
    except OSError as exc:
        _err(f"steadystream demo: cannot start (metrics port {args.metrics_port}): {exc}")
        return 1
    if not shown:  # --keep showed it before waiting for Ctrl-C
        show(report)
    return 0


# --------------------------------------------------------------------------------- triage
def _json_error(code: int, kind: str, message: str, **extra: object) -> None:
    """The JSON error document ``triage --json`` prints on stdout for every failure that
    leaves no report: ``{"error": {"kind", "message"}, "exit_code", ...}``."""
    import json

    doc = {"error": {"kind": kind, "message": message}, "exit_code": code, **extra}
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _cmd_triage(args: argparse.Namespace) -> int:
    from .triage import EXIT_INTERNAL

    url = args.prometheus

    def fail(code: int, kind: str, message: str) -> int:
        _err(f"steadystream triage: {message}")
        if args.json:
            _json_error(code, kind, message, prometheus=url)
        return code

    try:
        return _triage(args, url, fail)
    except Exception as exc:  # a bug in triage: its own exit code, never 1 (= "active")
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        at = f" at {where.tb_frame.f_code.co_filename}:{where.tb_lineno}" if where else ""
        return fail(
            EXIT_INTERNAL,
            "internal",
            f"internal error: {type(exc).__name__}: {exc}{at} (a bug in steadystream; the "
            "state of the service is unknown)",
        )


def _triage(args: argparse.Namespace, url: str, fail: Callable[[int, str, str], int]) -> int:
    import json

    from .spec import default_spec
    from .triage import (
        EXIT_NO_DATA,
        EXIT_UNREACHABLE,
        EXIT_USAGE,
        PrometheusUnreachable,
        discover_services,
        triage,
    )

    try:
        if args.spec:
            spec = load_spec(args.spec)
        else:
            service = args.service
            if service is None:
                services = discover_services(url, timeout=args.timeout)
                if not services:
                    return fail(
                        EXIT_NO_DATA,
                        "no_data",
                        f"no data: {url} holds no steadystream series (stream_*); check that "
                        "the service is scraped, or pass --spec",
                    )
                if len(services) > 1:
                    return fail(
                        EXIT_USAGE,
                        "usage",
                        f"{url} has several services ({', '.join(services)}); choose one "
                        "with --service or --spec",
                    )
                service = services[0]
            spec = default_spec(service)
        report = triage(spec, url, timeout=args.timeout, deadline=args.deadline)
    except SpecError as exc:
        # The spec's own located lines, without the "steadystream triage:" prefix fail() adds.
        _err(str(exc))
        if args.json:
            _json_error(EXIT_USAGE, "spec", str(exc), prometheus=url)
        return EXIT_USAGE
    except PrometheusUnreachable as exc:
        return fail(EXIT_UNREACHABLE, "unreachable", f"Prometheus unreachable: {exc}")
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    elif sys.stdout.isatty():
        from .triage import render_rich

        render_rich(report)
    else:
        sys.stdout.write(report.render_text())
    return report.exit_code


# ------------------------------------------------------------------------------- simulate
def _cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from .simulate import PROFILES, Upstream
    from .spec.units import parse_duration

    if args.faults not in PROFILES:
        _err(
            f"steadystream simulate: unknown fault profile {args.faults!r}; known: "
            f"{', '.join(sorted(PROFILES))}"
        )
        return 2
    pacing = {}
    for name in ("token_interval", "first_token_latency"):
        text = getattr(args, name)
        try:
            pacing[name] = parse_duration(text) if text != "0" else 0.0
        except ValueError as exc:
            _err(f"steadystream simulate: --{name.replace('_', '-')}: {exc}")
            return 2

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with Upstream(profile=args.faults, seed=args.seed, port=args.port, **pacing) as up:
            profile = PROFILES[args.faults]
            print(
                f"steadystream simulate: OpenAI Responses API on {up.base_url}\n"
                f"  faults: {profile.name} ({profile.description}); seed {args.seed}; "
                f"first token {args.first_token_latency}, then {args.token_interval} per delta\n"
                f"  point the openai client at it:\n"
                f'    client = openai.OpenAI(base_url="{up.base_url}", api_key="test")\n'
                f"    or: export OPENAI_BASE_URL={up.base_url} OPENAI_API_KEY=test\n"
                f'  per-request faults: header x-steadystream-fault, e.g. "drop_after=20" or '
                f'"stall=2s@10" (reference: python -m pydoc steadystream.simulate)\n'
                f"  Ctrl-C stops.",
                flush=True,
            )
            await stop.wait()
            stats = up.stats
        faults = ", ".join(f"{k}={v}" for k, v in sorted(stats.faults.items())) or "none"
        print(
            f"stopped: {sum(stats.requests.values())} requests, faults injected: {faults}",
            flush=True,
        )

    try:
        asyncio.run(serve())
    except OSError as exc:
        _err(f"steadystream simulate: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}")
        return 1
    return 0


def _port(text: str) -> int:
    """argparse type of ``--port``: a TCP port, 0 meaning any free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: use 0-65535 (0: a free one)")
    return port


#: Most concurrent streams ``demo --streams`` starts (each is a task, a connection and a
#: simulated generation).
MAX_DEMO_STREAMS = 10_000


def _streams(text: str) -> int:
    """argparse type of ``demo --streams``: 1 to :data:`MAX_DEMO_STREAMS`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: give a whole number") from None
    if not 1 <= value <= MAX_DEMO_STREAMS:
        raise argparse.ArgumentTypeError(f"invalid count {value}: use 1-{MAX_DEMO_STREAMS}")
    return value


def _share(text: str) -> float:
    """argparse type of ``demo --slow-consumers``: a share from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid share {text!r}: give 0 to 1") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"invalid share {text!r}: give 0 to 1")
    return value


def _seconds(text: str) -> float:
    """argparse type of ``--timeout`` and ``--deadline``: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds {text!r}: give a finite number above 0"
        )
    return value


def _http_url(text: str) -> str:
    """argparse type of ``--prometheus``: an http(s) URL with a host, without a trailing /."""
    import httpx

    hint = "give the base URL, e.g. http://localhost:9090"
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"invalid URL {text!r} ({exc}); {hint}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"invalid URL {text!r}: not http:// or https:// with a host; {hint}"
        )
    if url.query or url.fragment:
        raise argparse.ArgumentTypeError(f"invalid URL {text!r}: no query or fragment; {hint}")
    return text.rstrip("/")


class _Parser(argparse.ArgumentParser):
    """argparse with one addition: a usage error of ``triage --json`` is also a JSON error
    document on stdout (``kind: usage``, exit 2), so a script reading stdout always gets
    JSON."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            from .triage import EXIT_USAGE

            _json_error(EXIT_USAGE, "usage", f"{self.prog}: {message}")
        super().error(message)


def build_parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """The command line; ``json_errors`` makes ``triage``'s usage errors JSON documents too."""
    parser = _Parser(
        prog="steadystream",
        description="Observability and SRE operations for LLM token streaming, from one SLO spec.",
    )
    parser.add_argument("--version", action="version", version=f"steadystream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        help="check specs; print file:line:col: path: message per problem",
        description="Validate every spec named: a file, or a directory's *.yaml and *.yml "
        "files (not recursive). Exit 0 when all are valid, 1 otherwise.",
    )
    p.add_argument("spec", nargs="+", help="spec file or directory of spec files")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: ok, exit_code, specs (file, ok, service, slos or "
        "problems) and every problem with file, line, column, path and message",
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "import",
        help="print the steadystream spec equivalent to a Sloth or OpenSLO file",
        description="Map a Sloth prometheus/v1 or OpenSLO v1alpha/v1 file to a steadystream "
        "spec and print it as YAML (validate and generate also read such files directly). "
        "What cannot be mapped is an error naming the field; exit 1.",
    )
    p.add_argument("file", help="Sloth or OpenSLO YAML file")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("schema", help="print the spec's JSON Schema")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser(
        "generate",
        help="write DIR/alerts, DIR/dashboards and DIR/runbooks from specs (--check: CI gate)",
    )
    p.add_argument(
        "spec",
        nargs="+",
        help="spec file or directory of spec files (*.yaml, *.yml, not recursive)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory: one spec file writes DIR/alerts, DIR/dashboards, ...; "
        "several specs or a directory write DIR/<service>/alerts, ... per spec (two specs "
        "with one service are refused)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; print a unified diff and exit 1 when DIR is stale",
    )
    p.add_argument(
        "--format",
        choices=("files", "kubernetes"),
        default="files",
        help="files (default): rule files, Grafana JSON, Alertmanager config, runbooks; "
        "kubernetes: DIR/kubernetes/ with PrometheusRule objects, dashboard ConfigMaps and a "
        "kustomization.yaml, beside DIR/alertmanager/ and DIR/runbooks/ (docs/kubernetes.md)",
    )
    p.set_defaults(func=_cmd_generate)

    from .demo.defaults import DEFAULT_FAULTS, DEFAULT_INCIDENT, DEFAULT_STREAMS, INCIDENT_STREAMS

    p = sub.add_parser(
        "demo",
        help="an incident in a box: generated rules in a real Prometheus, alerts firing, "
        "triage naming the runbook, a timeline",
        description="Without --duration: the scripted incident (healthy traffic, the fault "
        "profile, recovery) against a real Prometheus running the rules generated from a "
        "compressed-time spec, alerts watched, triage at the peak, a timeline at the end. "
        "With --duration: a steady load under one fault profile and the SLO report only.",
    )
    p.add_argument(
        "--duration",
        type=_seconds,
        default=None,
        metavar="S",
        help="a steady load for S seconds instead of the scripted incident (no Prometheus)",
    )
    p.add_argument(
        "--streams",
        type=_streams,
        default=None,
        metavar="N",
        help=f"concurrent streams (default: {INCIDENT_STREAMS} in the incident, "
        f"{DEFAULT_STREAMS} with --duration)",
    )
    p.add_argument(
        "--faults",
        default=None,
        metavar="PROFILE",
        help=f"fault profile of the simulated upstream: the incident's (default: "
        f"{DEFAULT_INCIDENT}, every request 503) or, with --duration, the whole run's "
        f"(default: {DEFAULT_FAULTS}, a realistic mix of every failure class)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="after the report, keep the upstream, /metrics and Prometheus running until "
        "Ctrl-C, and print the alerts page and graph URLs",
    )
    p.add_argument(
        "--no-prometheus",
        action="store_true",
        help="run the scripted load and the SLO report without Prometheus (what happens when "
        "no prometheus binary is installed)",
    )
    p.add_argument(
        "--metrics-port",
        type=_port,
        default=0,
        metavar="P",
        help="serve /metrics on 127.0.0.1:P (default: 0, a free port)",
    )
    p.add_argument(
        "--spec",
        help="SLO spec (default: the compressed-time demo spec for the incident, the built-in "
        "baseline for chat-gateway with --duration)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed for faults and prompts (default: 0)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON on stdout (progress goes to stderr)",
    )
    p.add_argument(
        "--provider",
        choices=("openai", "chat", "anthropic"),
        default="openai",
        help="the API the streams speak: openai (Responses, responses_stream), chat (Chat "
        "Completions, chat_stream) or anthropic (Messages, messages_stream) (default: openai)",
    )
    p.add_argument(
        "--slow-consumers",
        type=_share,
        default=None,
        metavar="SHARE",
        help="share of consumers that read slowly through a small relay buffer (the "
        "slow-consumer class; default: 0.03 with the mixed profile, else 0)",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "triage",
        help="on-call: rank the active failure classes from Prometheus, print the runbook",
        description="Exit codes: 0 healthy, 1 something active, 2 usage or spec error, "
        "3 Prometheus unreachable, a malformed reply, or a query failed or ran past the "
        "deadline, 4 no steadystream data for the service, 5 an internal error of triage.",
    )
    p.json_errors = json_errors
    p.add_argument(
        "--prometheus",
        required=True,
        type=_http_url,
        metavar="URL",
        help="Prometheus base URL, e.g. http://localhost:9090",
    )
    p.add_argument(
        "--spec",
        help="SLO spec of the service (default: the baseline spec for "
        "--service, or for the only service Prometheus has)",
    )
    p.add_argument("--service", help="service name when no --spec is given")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="HTTP timeout per query (default: 10)",
    )
    p.add_argument(
        "--deadline",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="bound on the whole triage; queries run 4 at a time, and one not answered by "
        "then is reported as an error (default: 60)",
    )
    p.set_defaults(func=_cmd_triage)

    p = sub.add_parser(
        "simulate",
        help="serve the fault-injecting OpenAI Responses API upstream on loopback",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=0,
        metavar="P",
        help="port on 127.0.0.1 (default: 0, a free one)",
    )
    p.add_argument(
        "--faults",
        default="none",
        metavar="PROFILE",
        help="fault profile: none, flaky, mixed, rate-limit, outage, drops, stall, ... "
        "(default: none; per-request faults via the x-steadystream-fault header)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed (default: 0)")
    p.add_argument(
        "--token-interval",
        default="0",
        metavar="DUR",
        help="simulated model time between deltas, e.g. 20ms (default: 0, as fast as possible)",
    )
    p.add_argument(
        "--first-token-latency",
        default="0",
        metavar="DUR",
        help="simulated model latency before the first delta, e.g. 200ms (default: 0)",
    )
    p.set_defaults(func=_cmd_simulate)

    return parser


# ------------------------------------------------------------------------- install extras
#: The commands that need an extra beyond the core install, with the modules that extra brings
#: (``validate``, ``schema`` and ``simulate`` run on the core install).
COMMAND_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "generate": ("generate", ("grafanalib", "jinja2")),
    "triage": ("cli", ("httpx", "rich")),
    "demo": ("demo", ("openai", "anthropic", "grafanalib", "jinja2", "httpx", "rich")),
}
#: Exit code of a command whose extra is not installed (the message names the pip command).
EXIT_MISSING_EXTRA = 2
#: Modules only extras install: a ModuleNotFoundError for one of them (or below) is a missing
#: extra, never a bug.
_EXTRA_MODULES = (
    "grafanalib",
    "jinja2",
    "rich",
    "httpx",
    "openai",
    "anthropic",
    "google.genai",
    "redis",
    "starlette",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
)


def _missing(modules: Sequence[str]) -> str | None:
    """The first of ``modules`` that cannot be imported (looked up, not imported)."""
    import importlib.util

    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _missing_extra(command: str, module: str, *, json_doc: bool) -> int:
    extra = COMMAND_EXTRAS[command][0] if command in COMMAND_EXTRAS else "all"
    message = (
        f"steadystream {command}: needs the '{extra}' extra ({module} is not installed): "
        f"pip install 'steadystream[{extra}]'"
    )
    _err(message)
    if json_doc:
        _json_error(EXIT_MISSING_EXTRA, "missing_extra", message)
    return EXIT_MISSING_EXTRA


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit codes are the command's own, or :data:`EXIT_MISSING_EXTRA` with
    one line naming ``pip install 'steadystream[...]'`` when its extra is not installed."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), "")
    json_errors = words[:1] == ["triage"] and "--json" in words
    if command in COMMAND_EXTRAS:
        module = _missing(COMMAND_EXTRAS[command][1])
        if module is not None:
            return _missing_extra(command, module, json_doc=json_errors)
    parser = build_parser(json_errors=json_errors)
    try:
        args = parser.parse_args(words)
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        name = exc.name or ""
        if not any(name == m or name.startswith(m + ".") for m in _EXTRA_MODULES):
            raise
        return _missing_extra(command, name, json_doc=json_errors)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
