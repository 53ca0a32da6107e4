"""Prometheus rules from the spec: SLI recording rules, burn-rate and failure-class alerts,
an Alertmanager configuration with inhibit rules, and promtool unit tests for every alert.

``render_rules(spec, source)`` returns ``{relative path: file text}`` (the CLI writes them),
each kind in its own directory so ``rule_files: [alerts/*.yaml]`` loads only rules::

    alerts/chat-gateway.rules.yaml            recording + alerting rules (rule_files:)
    rule-tests/chat-gateway.rules.test.yaml   `promtool test rules` for every alert
    alertmanager/chat-gateway.yaml            route, receiver and inhibit_rules: one page
                                              per incident (symptoms under their cause,
                                              tickets under pages of the same SLO)

Alerts and ``steadystream triage`` share their definitions: :func:`failure_class_signals` and
:func:`slo_burn_signals` return the :class:`Signal` (PromQL, threshold, description) each alert
fires on.
"""

from __future__ import annotations

from ..catalog import names
from ..catalog.alerting import (
    error_budget,
    failure_class_signals,
    slo_burn_signals,
    slo_outage_signals,
)
from ..catalog.promql import matcher_labels
from ..catalog.signal import Signal, format_threshold, tier_factor
from ._render import render_rules, rules_paths
from ._rules import (
    DEFAULT_WINDOWS,
    alertmanager_config,
    inhibit_rules,
    rule_groups,
    windows,
)
from ._yaml import dump as dump_yaml

__all__ = [
    "DEFAULT_WINDOWS",
    "Signal",
    "alertmanager_config",
    "dump_yaml",
    "error_budget",
    "failure_class_signals",
    "format_threshold",
    "inhibit_rules",
    "matcher_labels",
    "names",
    "render_rules",
    "rule_groups",
    "rules_paths",
    "slo_burn_signals",
    "slo_outage_signals",
    "tier_factor",
    "windows",
]
