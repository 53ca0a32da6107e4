"""Shared test set-up: the fault-injecting upstream fixtures (``upstream``, ``aupstream``,
``upstream_factory``) from :mod:`steadystream.simulate.pytest_plugin`."""

pytest_plugins = ["steadystream.simulate.pytest_plugin"]
