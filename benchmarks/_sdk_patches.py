"""The openai SDK as shipped, again after an OpenTelemetry instrumentation was switched off.

Neither opentelemetry-instrumentation-openai-v2 nor OpenLLMetry (opentelemetry-instrumentation-
openai) removes all of its patches on ``uninstrument()``: OpenLLMetry's wrappers of
``Responses.create`` stay live, so a stream read afterwards still makes its span. ``bench_e2e.py``
switches each on around its own measurements, and ``tests/test_coexistence.py`` around each
test; both put the SDK's classes back with :func:`restore`. Both instrumentations patch with
wrapt (a dependency of each), whose proxies :func:`restore` sees through.
"""

from __future__ import annotations

import sys
from typing import Any

import wrapt

# wrapt 2 splits the proxy base from ``ObjectProxy``; in wrapt 1 ``ObjectProxy`` is the base.
_PROXY: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
_UNSAVED: Any = object()


def openai_attributes() -> dict[tuple[type, str], Any]:
    """Every attribute of every class the openai package has imported (what instrumentations
    patch)."""
    out: dict[tuple[type, str], Any] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "openai" or name.startswith("openai.")):
            continue
        for cls in list(vars(module).values()):
            if isinstance(cls, type) and cls.__module__ == name:
                out.update(((cls, attr), value) for attr, value in list(vars(cls).items()))
    return out


def restore(saved: dict[tuple[type, str], Any]) -> None:
    """Put back every attribute that changed since ``saved`` (an :func:`openai_attributes`
    taken before instrumenting). A class first imported while instrumented (the SDK imports its
    resources lazily) has nothing saved: its methods are unwrapped from wrapt's proxies."""
    for (cls, name), value in openai_attributes().items():
        old = saved.get((cls, name), _UNSAVED)
        if old is _UNSAVED:
            old = value
            while isinstance(old, _PROXY):
                old = old.__wrapped__
        if old is not value:
            setattr(cls, name, old)
