"""The one YAML SLO spec: model, loader with located errors, defaults and JSON Schema."""

from __future__ import annotations

import json
from typing import Any

from .loader import (
    Problem,
    SpecError,
    default_spec,
    load_spec,
    parse_spec,
    read_spec_text,
    spec_digest,
)
from .model import (
    SLO,
    Alerting,
    ErrorsIndicator,
    FailureClassAlert,
    LatencyIndicator,
    Outage,
    Spec,
    StreamPolicy,
    Tier,
    semantic_problems,
)
from .units import format_duration, format_percent, format_size

__all__ = [
    "SLO",
    "Alerting",
    "ErrorsIndicator",
    "FailureClassAlert",
    "LatencyIndicator",
    "Outage",
    "Problem",
    "Spec",
    "SpecError",
    "StreamPolicy",
    "Tier",
    "default_spec",
    "format_duration",
    "format_percent",
    "format_size",
    "json_schema",
    "json_schema_text",
    "load_spec",
    "parse_spec",
    "read_spec_text",
    "semantic_problems",
    "spec_digest",
]


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12), for editors and external validators."""
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://steadystream.dev/schema/slo-spec-v1.json",
        "title": "steadystream SLO spec",
        **schema,
    }


def json_schema_text() -> str:
    """:func:`json_schema` as stable, indented JSON with a trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
