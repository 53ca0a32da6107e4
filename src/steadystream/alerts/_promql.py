"""Small PromQL and number-formatting helpers for the rule generator.

Numbers and durations end up in rule files that are diffed in CI, so they are printed as the
shortest clean decimal (``13.44``, not ``13.440000000000001``) and the value a rule compares
against is exactly the value printed.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import conventions as c
from ..spec import Spec, format_duration

#: Samples per 5 m of a series recorded every minute: ``sum_over_time`` of 5 m increases
#: divided by this is an event count (each event sits in five consecutive 5 m increases).
SLI_INTERVAL_SECONDS = 60
FIVE_MINUTES = 300.0
SAMPLES_PER_5M = int(FIVE_MINUTES // SLI_INTERVAL_SECONDS)


def num(value: float, digits: int = 10) -> str:
    """``value`` rounded to ``digits`` decimals, printed without a trailing ``.0``."""
    rounded = round(float(value), digits)
    if rounded == 0:
        return "0"
    text = repr(rounded)
    if "e" in text or "E" in text:
        text = f"{rounded:.{digits}f}".rstrip("0").rstrip(".")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def clean(value: float, digits: int = 10) -> float:
    """The float a rule file holds for ``value``: exactly what :func:`num` prints."""
    return float(num(value, digits))


def dur(seconds: float) -> str:
    """A Prometheus duration (``5m``, ``28d``, ``2500ms``)."""
    return format_duration(seconds)


def quote(value: str) -> str:
    """A PromQL double-quoted string literal (backslashes, quotes and newlines escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def matcher_labels(spec: Spec) -> dict[str, str]:
    """The label set every query selects on: the spec's ``selector`` plus ``service``.

    The selector may pin ``service`` itself (to a scrape-side value); it is never matched twice.
    Recorded series carry exactly these labels, so every query, raw or recorded, selects the
    same way.
    """
    labels = dict(spec.selector)
    labels.setdefault(c.LABEL_SERVICE, spec.service)
    return labels


class Sel:
    """Builds ``metric{matchers}`` with the spec's matchers always present.

    >>> sel = Sel({"job": "chat-gateway", "service": "chat-gateway"})
    >>> sel("stream_retry_total", reason="429")
    'stream_retry_total{job="chat-gateway",reason="429",service="chat-gateway"}'

    An extra value starting with ``=~``, ``!~`` or ``!=`` uses that operator.
    """

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels = dict(labels)

    def matchers(self, **extra: str) -> str:
        parts: list[tuple[str, str, str]] = [(k, "=", v) for k, v in self.labels.items()]
        for key, value in extra.items():
            for op in ("=~", "!~", "!="):
                if value.startswith(op):
                    parts.append((key, op, value[len(op) :]))
                    break
            else:
                parts.append((key, "=", value))
        return ",".join(f"{k}{op}{quote(v)}" for k, op, v in sorted(parts))

    def __call__(self, metric: str, **extra: str) -> str:
        return f"{metric}{{{self.matchers(**extra)}}}"


def raw_template_string(promql: str) -> str:
    """``promql`` as a Go template raw string (backquoted) for ``query`` in annotations."""
    if "`" in promql:
        raise ValueError(f"cannot embed a backquote in an annotation query: {promql!r}")
    return f"`{promql}`"
