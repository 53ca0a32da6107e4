"""PromQL quoting, selectors, query fragments and number formatting: the one place for them.

Every query steadystream generates (rules, dashboards, runbooks, ``triage``) is built here, so
a label value is quoted one way everywhere and every query carries the spec's ``selector`` and
the ``service`` label: a dashboard or a pasted runbook query never mixes two services that
share a Prometheus. Rules use :class:`Sel` (concrete values, sorted matchers); dashboards pass
Grafana variables (``$service``, ``$model``) through :class:`Selector`; runbooks pass the
concrete service name so their queries paste straight into the Prometheus UI.

Numbers and durations end up in files that are diffed in CI, so they are printed as the
shortest clean decimal (``13.44``, not ``13.440000000000001``) and the value a rule compares
against is exactly the value printed.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import conventions as c
from ..spec import Spec, format_duration


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


_OPERATORS = ("=~", "!~", "!=")


def matcher(key: str, value: str) -> str:
    """One label matcher, ``key="value"``; a value starting with ``=~``, ``!~`` or ``!=``
    uses that operator (``matcher("reason", "=~429|5xx")`` is ``reason=~"429|5xx"``)."""
    for op in _OPERATORS:
        if value.startswith(op):
            return f"{key}{op}{quote(value[len(op) :])}"
    return f"{key}={quote(value)}"


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
        parts = [(k, "=", v) for k, v in self.labels.items()]
        for key, value in extra.items():
            op = _op(value)
            parts.append((key, op, value.removeprefix(op) if op != "=" else value))
        return ",".join(f"{k}{op}{quote(v)}" for k, op, v in sorted(parts))

    def __call__(self, metric: str, **extra: str) -> str:
        return f"{metric}{{{self.matchers(**extra)}}}"


def _op(value: str) -> str:
    return next((op for op in _OPERATORS if value.startswith(op)), "=")


#: The range Grafana substitutes with a window of at least four scrape intervals. Every
#: ``rate``/``increase`` on a dashboard uses it (dashboard-linter's target-rate-interval-rule):
#: a fixed ``[1m]`` renders empty at long zooms and noisy at short ones.
RATE_INTERVAL = "$__rate_interval"

#: Grafana template variables (the names are part of each dashboard's URL: ``var-service=``).
VAR_DATASOURCE = "datasource"
VAR_SERVICE = "service"
VAR_MODEL = "model"


class Selector:
    """The label matchers of one audience: Grafana (variables) or a terminal (concrete values).

    ``Selector.grafana(spec)`` gives ``{job="chat-gateway",service="$service",model=~"$model"}``;
    ``Selector.concrete(spec)`` gives ``{job="chat-gateway",service="chat-gateway"}``.
    """

    def __init__(self, fixed: Mapping[str, str], service: str, model_regex: str | None) -> None:
        self._fixed = dict(fixed)
        self._service = service
        self._model_regex = model_regex

    @classmethod
    def grafana(cls, spec: Spec) -> Selector:
        """Matchers for dashboards: the spec's selector, ``$service`` and ``$model``."""
        return cls(spec.selector, f"${VAR_SERVICE}", f"${VAR_MODEL}")

    @classmethod
    def concrete(cls, spec: Spec) -> Selector:
        """Matchers for runbooks: the spec's selector plus ``service="<spec.service>"``."""
        return cls(spec.selector, spec.service, None)

    def matchers(self, *, model: bool = True, **extra: str) -> str:
        """The inside of ``{...}``. ``extra`` adds equality matchers; a value starting with
        ``=~``, ``!~`` or ``!=`` is used as that operator (``reason="=~429|5xx"``)."""
        return ",".join(self._parts(model, extra))

    def _parts(self, model: bool, extra: dict[str, str]) -> list[str]:
        parts = [f"{k}={quote(v)}" for k, v in sorted(self._fixed.items())]
        # The spec's selector may already pin the service label; never match it twice.
        if c.LABEL_SERVICE not in self._fixed:
            parts.append(f"{c.LABEL_SERVICE}={quote(self._service)}")
        if model and self._model_regex is not None:
            parts.append(f"{c.LABEL_MODEL}=~{quote(self._model_regex)}")
        parts.extend(matcher(key, value) for key, value in extra.items())
        return parts

    def required(self) -> tuple[str, ...]:
        """The matchers every query must carry (the spec's selector and the service)."""
        return tuple(self._parts(False, {}))

    def __call__(self, metric: str, *, model: bool = True, **extra: str) -> str:
        """``metric{matchers}``."""
        return f"{metric}{{{self.matchers(model=model, **extra)}}}"


def rate(sel: Selector, metric: str, window: str = RATE_INTERVAL, **extra: str) -> str:
    """``rate(metric{...}[window])``."""
    return f"rate({sel(metric, **extra)}[{window}])"


def sum_rate(
    sel: Selector, metric: str, by: tuple[str, ...] = (), window: str = RATE_INTERVAL, **extra: str
) -> str:
    """``sum by (labels) (rate(metric{...}[window]))``."""
    if not by:
        return f"sum(rate({sel(metric, **extra)}[{window}]))"
    return f"sum by ({', '.join(by)}) (rate({sel(metric, **extra)}[{window}]))"


def quantile(
    sel: Selector,
    histogram: str,
    q: float,
    by: tuple[str, ...] = (),
    window: str = RATE_INTERVAL,
) -> str:
    """``histogram_quantile(q, sum by (le, ...) (rate(<histogram>_bucket{...}[window])))``."""
    labels = ", ".join(("le", *by))
    return (
        f"histogram_quantile({q:g}, sum by ({labels}) (rate({sel(c.bucket(histogram))}[{window}])))"
    )


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / (denominator > 0)``: a zero denominator (no traffic) yields no sample
    rather than the NaN of ``0/0``, so a quiet night shows a gap, not a spike or a flat 0."""
    return f"{numerator} / ({denominator} > 0)"
