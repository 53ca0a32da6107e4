"""Shared set-up of the Anthropic tests: a monitor with in-memory telemetry, request helpers."""

from __future__ import annotations

import hashlib
from typing import Any

import steadystream as ss
import telemetry_support
from steadystream import conventions as c

MODEL = "claude-sim"
PROMPT = "hi"
TOKENS = 24
LABELS = {"service": "svc", "model": MODEL, "provider": "anthropic"}
MESSAGES = [{"role": "user", "content": PROMPT}]


def make_spec(**timeouts: str) -> ss.Spec:
    """Generous timeouts (a loaded CI machine never crosses them) unless a test sets short ones
    for the fault it injects; retries with short backoff."""
    t = {"first_token": "20s", "stream_idle": "20s", "total": "60s", **timeouts}
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": t,
                "checkpoint": {"every": 4},
                "retry": {
                    "max_retries": 3,
                    "base_backoff": "10ms",
                    "max_backoff": "50ms",
                    "budget": "100%",
                    "min_per_second": 10,
                },
            },
        }
    )


class Telemetry(telemetry_support.Telemetry):
    labels = LABELS
    default_spec = staticmethod(make_spec)


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What changed between two snapshots (gauges included), without zero changes."""
    keys = set(before) | set(after)
    out = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {k: v for k, v in sorted(out.items()) if v}


def text_of(events: list[Any]) -> str:
    """The answer text of Anthropic SDK events or dicts."""
    parts = []
    for e in events:
        typ = e["type"] if isinstance(e, dict) else e.type
        if typ != "content_block_delta":
            continue
        d = e["delta"] if isinstance(e, dict) else e.delta
        dtype = d["type"] if isinstance(d, dict) else d.type
        if dtype == "text_delta":
            parts.append(d["text"] if isinstance(d, dict) else d.text)
    return "".join(parts)


def types_of(events: list[Any]) -> list[str]:
    return [e["type"] if isinstance(e, dict) else e.type for e in events]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fault(spec: str) -> dict[str, str]:
    return {c.HEADER_FAULT: spec}
