"""pytest fixtures that run the fault-injecting upstream on loopback.

It needs ``pytest-asyncio``: install the ``pytest`` extra (``pip install
'steadystream[pytest]'``). Register in a ``conftest.py``::

    pytest_plugins = ["steadystream.simulate.pytest_plugin"]

then::

    def test_stream(upstream):                 # sync: server on its own thread
        client = openai.OpenAI(base_url=upstream.base_url, api_key="test")

    async def test_astream(aupstream):         # async: server in the test's event loop
        client = openai.AsyncOpenAI(base_url=aupstream.base_url, api_key="test")

    def test_flaky(upstream_factory):          # any profile / seed; stopped at teardown
        up = upstream_factory("flaky", seed=3)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

try:
    import pytest_asyncio
except ImportError:
    # One line instead of pytest's import traceback: what is missing and how to get it.
    raise pytest.UsageError(
        "steadystream.simulate.pytest_plugin needs pytest-asyncio (for the aupstream "
        "fixture): pip install 'steadystream[pytest]'"
    ) from None

from ._faults import Profile
from ._server import Upstream

UpstreamFactory = Callable[..., Upstream]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A running :class:`Upstream` with profile ``none`` and seed 0, on a background thread."""
    with Upstream(profile="none", seed=0) as up:
        yield up


@pytest_asyncio.fixture
async def aupstream() -> AsyncIterator[Upstream]:
    """A running :class:`Upstream` with profile ``none`` and seed 0, in the test's event loop."""
    async with Upstream(profile="none", seed=0) as up:
        yield up


@pytest.fixture
def upstream_factory() -> Iterator[UpstreamFactory]:
    """``factory(profile="none", seed=0, **kwargs)`` starts an upstream on a background thread.

    Every upstream it started is stopped when the test ends.
    """
    started: list[Upstream] = []

    def factory(profile: str | Profile = "none", seed: int = 0, **kwargs: Any) -> Upstream:
        up = Upstream(profile=profile, seed=seed, **kwargs)
        up.start_in_thread()
        started.append(up)
        return up

    yield factory
    for up in reversed(started):
        up.stop_thread()
