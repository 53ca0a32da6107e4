"""``Upstream()`` refuses a bad argument when it is built, naming the argument, instead of
failing later inside a server task."""

from __future__ import annotations

from typing import Any

import pytest

from steadystream.simulate import Upstream


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"first_token_latency": "100ms"}, "first_token_latency"),
        ({"first_token_latency": -1}, "first_token_latency"),
        ({"token_interval": float("nan")}, "token_interval"),
        ({"token_interval": True}, "token_interval"),
        ({"seed": "1"}, "seed"),
        ({"port": 70000}, "port"),
        ({"port": 1.0}, "port"),
        ({"profile": "nope"}, "profile"),
        ({"profile": 3}, "profile"),
        ({"max_stored": 0}, "max_stored"),
        ({"max_stored_bytes": 1.5}, "max_stored_bytes"),
        ({"record_requests": "yes"}, "record_requests"),
    ],
)
def test_bad_argument_is_refused_at_construction(kwargs: dict[str, Any], named: str) -> None:
    """A wrong type or value: ValueError at Upstream(...), its message naming the argument
    and the value given; nothing is started."""
    with pytest.raises(ValueError) as info:
        Upstream(**kwargs)
    message = str(info.value)
    assert named in message or (named == "profile" and "fault profile" in message)
    assert repr(next(iter(kwargs.values()))) in message


def test_good_arguments_are_kept() -> None:
    """Valid arguments construct an upstream that has not started yet."""
    up = Upstream("flaky", 3, token_interval=0.01, first_token_latency=0.1, record_requests=True)
    assert (up.seed, up.token_interval, up.first_token_latency) == (3, 0.01, 0.1)
