"""PromQL building blocks shared by the dashboards and the runbooks.

Every query steadystream puts in front of a human carries the spec's ``selector`` and the
``service`` label, so a dashboard or a pasted runbook query never mixes two services that share
a Prometheus. Dashboards pass Grafana variables (``$service``, ``$model``); runbooks pass the
concrete service name so their queries paste straight into the Prometheus UI.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import conventions as c
from ..spec import Spec

#: The range Grafana substitutes with a window of at least four scrape intervals. Every
#: ``rate``/``increase`` on a dashboard uses it (dashboard-linter's target-rate-interval-rule):
#: a fixed ``[1m]`` renders empty at long zooms and noisy at short ones.
RATE_INTERVAL = "$__rate_interval"

#: Grafana template variables (the names are part of each dashboard's URL: ``var-service=``).
VAR_DATASOURCE = "datasource"
VAR_SERVICE = "service"
VAR_MODEL = "model"


def quote(value: str) -> str:
    """A PromQL double-quoted string literal for ``value`` (backslashes and quotes escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


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
        for key, value in extra.items():
            for op in ("=~", "!~", "!="):
                if value.startswith(op):
                    parts.append(f"{key}{op}{quote(value[len(op) :])}")
                    break
            else:
                parts.append(f"{key}={quote(value)}")
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
