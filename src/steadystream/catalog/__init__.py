"""The base the generators share: what they all need to know, defined once.

:mod:`~steadystream.alerts`, :mod:`~steadystream.dashboards` and :mod:`~steadystream.runbooks`
are siblings: each imports this package, :mod:`steadystream.spec` and
:mod:`steadystream.conventions`, never one another. :mod:`steadystream.generate` composes them.

- :mod:`.classes`: the failure-class registry, one record per class;
- :mod:`.signal` and :mod:`.alerting`: the signal every alert fires on (and ``triage`` asks);
- :mod:`.names`: the recorded series, rule groups and alert names the rules write;
- :mod:`.panels`: which dashboard panels exist, where, and their ids;
- :mod:`.links`: dashboard and runbook paths and URLs;
- :mod:`.promql`: PromQL quoting, selectors, query fragments and number formatting;
- :mod:`.slo`: an SLO's events, error ratio and windows;
- :mod:`.faults`: the simulator's fault profiles, by name;
- :mod:`.memo` and :mod:`.source`: the per-render memo and the spec's source for headers.
"""
